// What needs attention above the content: the bridge reconnecting, no engine reachable, an exit node that is
// offline (internet traffic held), health warnings.
import type { AppSnapshot } from '../../../preload/api.ts';
import { exitNodeUse, heldReason } from '../../../preload/routes.ts';
import type { BridgeStatus } from '../api/index.ts';

export function Banners({ snapshot, bridge }: { snapshot: AppSnapshot; bridge: BridgeStatus }) {
  const held = snapshot.state === 'Running' && exitNodeUse(snapshot) === 'held';
  // The engine's own warning about the exit node says what the banner above says.
  const health = held ? snapshot.health.filter((h) => h.code !== 'exit-node') : snapshot.health;
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
      {held && (
        <div className="banner banner-bad" role="alert" data-testid="exit-node-held">
          <strong>{heldReason(snapshot)}.</strong> Internet traffic is held, not sent around it: wait for it, or choose
          another exit node or none on the Peers tab.
        </div>
      )}
      {health.length > 0 && (
        <ul className="banner banner-warn health" aria-label="Health warnings">
          {health.map((h) => (
            <li key={h.code}>{h.message}</li>
          ))}
        </ul>
      )}
    </>
  );
}
