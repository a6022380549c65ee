// The exit node in use, as status and the pickers see it: which peer the prefs name, whether it is online and
// offers an exit node (then traffic goes through it), and the warning when it does not. A chosen exit node that
// is offline or gone stays chosen: traffic to the internet is held, never sent outside the tunnel.
import type { ExitNodeStatus, PeerSummary, Prefs } from '../protocol.ts';

/** The status of the exit node prefs name; undefined when none is chosen. */
export function exitNodeStatus(
  peers: readonly PeerSummary[],
  prefs: Pick<Prefs, 'exitNodeID'>,
): ExitNodeStatus | undefined {
  const id = prefs.exitNodeID;
  if (!id) return undefined;
  const p = peers.find((x) => x.stableID === id);
  if (!p) return { id, name: id, online: null, active: false };
  return { id, name: p.name || p.dnsName || id, online: p.online, active: p.exitNodeOption };
}

/** The peers with the one in use marked (a copy of each marked peer; the others as they are). */
export function markExitNode(peers: PeerSummary[], exitNodeID: string): PeerSummary[] {
  if (!exitNodeID) return peers;
  return peers.map((p) => (p.stableID === exitNodeID ? { ...p, exitNode: true } : p));
}

/** The health warning for the chosen exit node, or undefined when it is fine (or none is chosen). */
export function exitNodeHealth(s: ExitNodeStatus | undefined, haveNetmap: boolean): string | undefined {
  if (!s || !haveNetmap) return undefined;
  if (s.name === s.id && !s.active && s.online === null) {
    return `the exit node ${s.id} is not in the network map: traffic to the internet is held until it returns or another is chosen`;
  }
  if (!s.active) {
    return `the exit node ${s.name} does not offer an exit node (control approved no default route for it): traffic to the internet is held`;
  }
  if (s.online === false) {
    return `the exit node ${s.name} is offline: traffic to the internet is held until it is back or another is chosen`;
  }
  return undefined;
}

export class ExitNodeChoiceError extends Error {
  override readonly name = 'ExitNodeChoiceError';
}

/**
 * The peer an --exit-node argument names: its host name, MagicDNS name (with or without the final dot), a
 * tailnet address or its StableID; it must offer an exit node. Throws one sentence naming the argument.
 */
export function resolveExitNode(peers: readonly PeerSummary[], arg: string): PeerSummary {
  const want = arg.trim().replace(/\.$/, '');
  const lower = want.toLowerCase();
  const match = peers.filter(
    (p) =>
      p.stableID === want ||
      p.addresses.includes(want) ||
      p.name.toLowerCase() === lower ||
      p.dnsName.toLowerCase().replace(/\.$/, '') === lower,
  );
  if (match.length === 0)
    throw new ExitNodeChoiceError(`no peer named ${JSON.stringify(arg)} (by name, MagicDNS name or address)`);
  if (match.length > 1) {
    throw new ExitNodeChoiceError(
      `${JSON.stringify(arg)} names ${match.length} peers; use the MagicDNS name or an address`,
    );
  }
  const p = match[0];
  if (!p.exitNodeOption)
    throw new ExitNodeChoiceError(`${JSON.stringify(arg)} (${p.dnsName || p.name}) does not offer an exit node`);
  return p;
}
