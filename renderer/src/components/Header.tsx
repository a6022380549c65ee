// Top bar: name, engine state (in words, announced when it changes; the exit node traffic goes through), this
// device (click copies its address), its key expiry when that needs attention, and the connect switch.
import type { AppSnapshot } from '../../../preload/api.ts';
import { exitNodeName, exitNodeUse } from '../../../preload/routes.ts';
import { useApi } from '../api/context.ts';
import { formatDate, isLoggedIn, primaryAddress, STATE_LABEL } from '../lib/format.ts';
import { keyExpiry } from '../lib/key-expiry.ts';
import { attempt, useStore } from '../store.ts';

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
  // Without an engine its state is unknown, not "starting".
  const label = link === 'none' ? 'No engine' : STATE_LABEL[state];
  const expiry = self && isLoggedIn(state) ? keyExpiry(self.keyExpiry) : undefined;
  const reauth = (): void => {
    useStore.getState().expectLoginURL();
    void attempt(() => api.login({}));
  };

  return (
    <header className="header">
      <div className="brand">
        <span className="brand-mark" aria-hidden="true" />
        Trellis
      </div>
      <div className="status" role="status" aria-live="polite">
        <span className={`dot dot-${tone}`} aria-hidden="true" />
        <span data-testid="connection-state" data-state={state}>
          {label}
        </span>
        {state === 'Running' && exitNodeUse(snapshot) === 'active' && (
          <span className="muted" data-testid="header-exit-node">
            · through exit node {exitNodeName(snapshot)}
          </span>
        )}
      </div>
      <div className="header-end">
        {expiry?.urgent && self?.keyExpiry && (
          <span className={`key-expiry${expiry.expired ? ' key-expired' : ''}`} data-testid="key-expiry">
            <span title={formatDate(self.keyExpiry)}>{expiry.text}</span>
            <button type="button" className="btn btn-small" onClick={reauth} disabled={snapshot.loggingIn}>
              Re-authenticate
            </button>
          </span>
        )}
        {self && (
          <button
            type="button"
            className="self"
            title={ip ? `Copy ${ip}` : undefined}
            onClick={() => ip && attempt(() => api.copyText(ip), `Copied ${ip}`)}
          >
            <span className="visually-hidden">This device:</span>
            <span data-testid="self-name" className="self-name">
              {self.name}
            </span>
            {ip && <span className="mono muted">{ip}</span>}
            {ip && <span className="visually-hidden">(copies the address)</span>}
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
