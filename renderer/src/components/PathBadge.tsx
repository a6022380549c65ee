// How packets reach a peer, in a word: direct, or through which DERP relay region (by its name when the map has
// one; a bare number means nothing to a user).
import type { PeerPath } from '../../../preload/api.ts';

export function pathText(path?: PeerPath): string {
  if (!path || path.via === 'none') return '';
  if (path.via === 'direct') return 'direct';
  if (path.derpRegionName) return `relay: ${path.derpRegionName}`;
  return path.derpRegion !== undefined ? `relay (region ${path.derpRegion})` : 'relay';
}

export function PathBadge({ path }: { path?: PeerPath }) {
  const text = pathText(path);
  return (
    <span data-testid="peer-path" className={text ? `badge badge-${path?.via}` : 'badge-none'}>
      {text}
    </span>
  );
}
