// Exit nodes and subnet routes as both the window and the tray see them: CIDR checks (what the user types into
// "advertised routes"), whether an address lies in a route (search by address), and which exit nodes to offer in
// what order. Pure functions over the API's types, shared by the renderer and the controller.
import type { AppSnapshot, PeerView } from './api.ts';

/** A parsed address: its family and its bits as one integer. */
interface Addr {
  v6: boolean;
  bits: bigint;
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    n = (n << 8n) | BigInt(p);
  }
  return n;
}

/** The 16-bit words of one side of "::"; an IPv4 tail (::ffff:1.2.3.4) counts as two words. */
function wordsOf(side: string, v4Tail: boolean): number[] | undefined {
  if (side === '') return [];
  const groups = side.split(':');
  const words: number[] = [];
  for (const [i, g] of groups.entries()) {
    if (v4Tail && i === groups.length - 1 && g.includes('.')) {
      const v4 = parseV4(g);
      if (v4 === undefined) return undefined;
      words.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
    } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) words.push(Number.parseInt(g, 16));
    else return undefined;
  }
  return words;
}

function parseV6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const head = wordsOf(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? wordsOf(halves[1], true) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let n = 0n;
  for (const w of [...head, ...new Array<number>(missing).fill(0), ...tail]) n = (n << 16n) | BigInt(w);
  return n;
}

/** An IPv4 or IPv6 address (no zone, no prefix); undefined when it is neither. */
export function parseAddress(s: string): Addr | undefined {
  const v4 = parseV4(s);
  if (v4 !== undefined) return { v6: false, bits: v4 };
  const v6 = s.includes(':') ? parseV6(s) : undefined;
  return v6 === undefined ? undefined : { v6: true, bits: v6 };
}

function formatAddress(a: Addr): string {
  if (!a.v6) return [24n, 16n, 8n, 0n].map((sh) => String((a.bits >> sh) & 0xffn)).join('.');
  const words = Array.from({ length: 8 }, (_, i) => Number((a.bits >> BigInt(112 - 16 * i)) & 0xffffn));
  // The longest run (of two or more) of zero words becomes "::", the first such run on a tie (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface Prefix {
  addr: Addr;
  length: number;
}

export function parsePrefix(s: string): Prefix | undefined {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(s.trim());
  if (!m) return undefined;
  const addr = parseAddress(m[1]);
  const length = Number(m[2]);
  if (!addr || length > (addr.v6 ? 128 : 32)) return undefined;
  return { addr, length };
}

function maskOf(p: Prefix): bigint {
  const width = p.addr.v6 ? 128n : 32n;
  const host = width - BigInt(p.length);
  return ((1n << width) - 1n) ^ ((1n << host) - 1n);
}

/** The route as tailscale writes it, or a sentence saying what is wrong with what was typed. */
export function checkRoute(typed: string): { route: string } | { error: string } {
  const t = typed.trim();
  if (t === '') return { error: 'Type a route like 192.168.1.0/24.' };
  const p = parsePrefix(t);
  if (!p) {
    return parseAddress(t)
      ? { error: `${t} needs a prefix length, like ${t}/${t.includes(':') ? 64 : 32}.` }
      : { error: `${t} is not a route; write it like 192.168.1.0/24 or fd00::/64.` };
  }
  if (p.length === 0) return { error: 'To send all traffic through this device, turn on "Run as exit node".' };
  const masked = p.addr.bits & maskOf(p);
  const canonical = `${formatAddress({ v6: p.addr.v6, bits: masked })}/${p.length}`;
  if (masked !== p.addr.bits) return { error: `${t} has bits set past its prefix; the route is ${canonical}.` };
  return { route: canonical };
}

/** Checks a list of typed routes: the canonical list without repeats, or the first problem found. */
export function checkRoutes(typed: readonly string[]): { routes: string[] } | { error: string } {
  const routes: string[] = [];
  for (const t of typed) {
    const r = checkRoute(t);
    if ('error' in r) return r;
    if (!routes.includes(r.route)) routes.push(r.route);
  }
  return { routes };
}

/** The address lies inside the route (same family, prefix bits equal). */
export function addressInRoute(address: string, route: string): boolean {
  const a = parseAddress(address);
  const p = parsePrefix(route);
  if (!a || !p || a.v6 !== p.addr.v6) return false;
  const mask = maskOf(p);
  return (a.bits & mask) === (p.addr.bits & mask);
}

/** Words a peer is also found by in a search: what it offers, and whether we use it. */
export function offerWords(p: PeerView): string {
  const words: string[] = [];
  if (p.exitNodeOption) words.push('exit node', 'exit-node');
  if (p.exitNode) words.push('in use');
  if (p.routes.length > 0) words.push('subnet routes', ...p.routes);
  return words.join(' ');
}

/** The word matches one of the peer's routes as an address inside it (10.0.0.7 finds the router of 10.0.0.0/24). */
export function routeHolds(p: PeerView, word: string): boolean {
  return parseAddress(word) !== undefined && p.routes.some((r) => addressInRoute(word, r));
}

/** The online exit node with the lowest measured latency: Headscale suggests none, so we measure. */
export function suggestedExitNode(peers: readonly PeerView[]): PeerView | undefined {
  let best: PeerView | undefined;
  for (const p of peers) {
    const ms = p.path?.latencyMs;
    if (!p.exitNodeOption || p.online !== true || p.expired || ms === undefined || !Number.isFinite(ms)) continue;
    const bestMs = best?.path?.latencyMs ?? Number.POSITIVE_INFINITY;
    if (ms < bestMs || (ms === bestMs && best && p.name.localeCompare(best.name) < 0)) best = p;
  }
  return best;
}

/** The peer the pickers offer first as "last used": the one chosen before (or the one in use now). */
export function lastUsedExitNode(peers: readonly PeerView[], last: string, current: string): PeerView | undefined {
  const id = last || current;
  return id ? peers.find((p) => p.stableID === id && p.exitNodeOption) : undefined;
}

export interface ExitNodeChoice {
  peer: PeerView;
  lastUsed: boolean;
  suggested: boolean;
}

/** Every exit node in the order the picker lists them: the last used first, then the suggested one, then the
 *  online ones before the offline ones, each by name. */
export function exitNodeChoices(
  peers: readonly PeerView[],
  prefs: { exitNodeID: string; lastExitNodeID: string },
): ExitNodeChoice[] {
  const last = lastUsedExitNode(peers, prefs.lastExitNodeID, prefs.exitNodeID);
  const suggested = suggestedExitNode(peers);
  const rank = (p: PeerView): number => (p === last ? 0 : p === suggested ? 1 : p.online === true ? 2 : 3);
  return peers
    .filter((p) => p.exitNodeOption)
    .sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name, undefined, { numeric: true }))
    .map((peer) => ({ peer, lastUsed: peer === last, suggested: peer === suggested }));
}

/** 'active': internet traffic leaves through the chosen exit node; 'held': one is chosen but offline or gone from
 *  the tailnet, so that traffic waits (never sent around it); 'none': no exit node chosen. */
export type ExitNodeUse = 'none' | 'active' | 'held';

export function exitNodeUse(s: AppSnapshot): ExitNodeUse {
  if (!s.prefs.exitNodeID) return 'none';
  return s.exitNode?.active && s.exitNode.online !== false ? 'active' : 'held';
}

/** The chosen exit node's name (its id when the tailnet no longer has it). */
export function exitNodeName(s: AppSnapshot): string {
  const id = s.prefs.exitNodeID;
  return s.exitNode?.name || s.peers.find((p) => p.stableID === id)?.name || id;
}

/** Why internet traffic is held, as the start of a sentence: "Exit node paris is offline". */
export function heldReason(s: AppSnapshot): string {
  const name = exitNodeName(s);
  const e = s.exitNode;
  const peer = s.peers.find((p) => p.stableID === s.prefs.exitNodeID);
  if (!peer && (!e || e.name === e.id)) return `Exit node ${name} is no longer in this tailnet`;
  if (e && !e.active && e.online !== false) return `${name} no longer offers to be an exit node`;
  return `Exit node ${name} is offline`;
}
