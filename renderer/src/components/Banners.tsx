// What needs attention above the content: the bridge reconnecting, no engine reachable, health warnings.
import type { AppSnapshot } from '../../../preload/api.ts';
import type { BridgeStatus } from '../api/index.ts';

export function Banners({ snapshot, bridge }: { snapshot: AppSnapshot; bridge: BridgeStatus }) {
  return (
    <>
      {bridge !== 'open' && (
        <div className="banner banner-warn" role="status">
          Lost the connection to Trellis — reconnecting…
        </div>
      )}
      {snapshot.link === 'none' && (
        <div className="banner banner-bad" role="alert" data-testid="link-problem">
          <strong>No engine running.</strong> {snapshot.linkProblem ?? 'Trellis cannot reach its engine.'}
        </div>
      )}
      {snapshot.health.length > 0 && (
        <ul className="banner banner-warn health" aria-label="Health warnings">
          {snapshot.health.map((h) => (
            <li key={h.code}>{h.message}</li>
          ))}
        </ul>
      )}
    </>
  );
}
