// What a device offers the tailnet, as badges beside its name: an exit node (and whether it is the one in use),
// subnet routes.
import type { PeerView } from '../../../preload/api.ts';

export function OfferBadges({ peer }: { peer: PeerView }) {
  return (
    <>
      {peer.exitNode ? (
        <span className="badge badge-exit-use" data-testid="peer-badge-exit-in-use">
          exit node in use
        </span>
      ) : (
        peer.exitNodeOption && (
          <span className="badge badge-offer" data-testid="peer-badge-exit">
            exit node
          </span>
        )
      )}
      {peer.routes.length > 0 && (
        <span className="badge badge-offer" data-testid="peer-badge-routes" title={peer.routes.join(', ')}>
          {peer.routes.length === 1 ? '1 subnet' : `${peer.routes.length} subnets`}
        </span>
      )}
    </>
  );
}
