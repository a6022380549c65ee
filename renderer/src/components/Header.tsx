// Top bar: name, engine state, this device (click copies its address) and the connect switch.
import type { AppSnapshot } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { isLoggedIn, primaryAddress, STATE_LABEL } from '../lib/format.ts';
import { attempt } from '../store.ts';

const TONE: Record<AppSnapshot['state'], string> = {
  Running: 'ok',
  Starting: 'busy',
  Stopped: 'off',
  NeedsLogin: 'off',
  NeedsMachineAuth: 'busy',
  NoState: 'busy',
};

export function Header({ snapshot }: { snapshot: AppSnapshot }) {
  const api = useApi();
  const { state, self, link } = snapshot;
  const ip = self ? primaryAddress(self.addresses) : undefined;
  const on = state === 'Running' || state === 'Starting';
  const canToggle = link !== 'none' && isLoggedIn(state);
  const tone = link === 'none' ? 'bad' : TONE[state];

  return (
    <header className="header">
      <div className="brand">
        <span className="brand-mark" aria-hidden="true" />
        Trellis
      </div>
      <div className="status">
        <span className={`dot dot-${tone}`} aria-hidden="true" />
        <span data-testid="connection-state" data-state={state}>
          {STATE_LABEL[state]}
        </span>
      </div>
      <div className="header-end">
        {self && (
          <button
            type="button"
            className="self"
            title={ip ? `Copy ${ip}` : undefined}
            onClick={() => ip && attempt(() => api.copyText(ip), `Copied ${ip}`)}
          >
            <span data-testid="self-name" className="self-name">
              {self.name}
            </span>
            {ip && <span className="mono muted">{ip}</span>}
          </button>
        )}
        <button
          type="button"
          role="switch"
          aria-checked={on}
          aria-label="Connected"
          data-testid="connect-toggle"
          className="switch"
          disabled={!canToggle}
          onClick={() => attempt(() => (on ? api.disconnect() : api.connect()))}
        >
          <span className="switch-knob" />
        </button>
      </div>
    </header>
  );
}
