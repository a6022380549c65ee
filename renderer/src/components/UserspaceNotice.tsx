// Userspace networking, said calmly above the device list: Trellis runs without a network device, so apps reach
// the tailnet through its proxies (their addresses, each with a copy button), why, and how to get the full mode.
// Nothing is wrong, so it is a note (role="note"), not an alert.
import type { NetworkingView } from '../../../preload/api.ts';
import { CopyButton } from './CopyButton.tsx';

export function UserspaceNotice({ networking }: { networking?: NetworkingView }) {
  if (networking?.mode !== 'userspace') return null;
  const proxies = [
    { kind: 'socks5', name: 'SOCKS5 proxy', address: networking.socks5 },
    { kind: 'http', name: 'HTTP proxy', address: networking.httpProxy },
  ].filter((p): p is { kind: string; name: string; address: string } => !!p.address);
  return (
    <section className="userspace-notice" role="note" aria-labelledby="userspace-title" data-testid="userspace-notice">
      <p>
        <strong id="userspace-title">Userspace mode:</strong> Trellis runs without a network device, so apps reach the
        tailnet through its proxy (an app's proxy setting, or <span className="mono">ALL_PROXY</span>).
      </p>
      {proxies.length > 0 ? (
        <dl className="proxy-list">
          {proxies.map((p) => (
            <div key={p.kind} className="proxy-row" data-testid="proxy-address" data-kind={p.kind}>
              <dt>{p.name}</dt>
              <dd>
                <span className="mono" data-testid="proxy-value">
                  {p.address}
                </span>
                <CopyButton value={p.address} label={`Copy the ${p.name} address`} />
              </dd>
            </div>
          ))}
        </dl>
      ) : (
        <p data-testid="proxy-none">No proxy is running: set their addresses in Settings.</p>
      )}
      {(networking.reason || networking.fullModeAdvice) && (
        <p className="muted small">
          {networking.reason && <span data-testid="userspace-reason">{networking.reason}</span>}{' '}
          {networking.fullModeAdvice && <span data-testid="userspace-full-mode">{networking.fullModeAdvice}</span>}
        </p>
      )}
    </section>
  );
}
