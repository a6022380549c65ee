// The route flags `up` shares with `set`: the exit node (by name, MagicDNS name or address, resolved here from
// status as tailscale's CLI does), LAN access, accept-routes and what this node advertises; and the route marks
// `status` shows. Text from the server is returned raw: the callers make it printable.

import type { PeerSummary, Prefs, StatusSnapshot } from '../engine/protocol.ts';
import { parseAdvertiseRoutes, RouteError } from '../engine/routes/cidr.ts';
import { ExitNodeChoiceError, resolveExitNode } from '../engine/routes/exit-node.ts';
import { ForwardPortsError, formatForwardPorts, parseForwardPorts } from '../engine/services/port-forward.ts';
import { UsageError } from './paths.ts';

/** The route flags as given; undefined = not given (unchanged). */
export interface RouteFlags {
  /** '' = no exit node. */
  exitNode?: string;
  exitNodeAllowLANAccess?: boolean;
  routeAll?: boolean;
  advertiseExitNode?: boolean;
  advertiseRoutes?: string[];
  /** Not a route, but a pref `up` and `set` share the same way: canonical port forwards ([] = none). */
  forwardPorts?: string[];
}

export const ROUTE_FLAGS_HELP = `  --exit-node=NAME|IP      send all traffic through this peer (name, MagicDNS name or address; '' = none)
  --exit-node-allow-lan-access=true|false
                           with an exit node, keep the local network reachable directly
  --accept-routes=true|false
                           use the subnet routes other nodes offer
  --advertise-exit-node=true|false
                           offer this node as an exit node
  --advertise-routes=CIDR,...
                           offer these subnets to the tailnet ('' = none)
  --forward-ports=PORT[=LOCAL_PORT],...
                           in userspace networking, forward these tailnet TCP ports to 127.0.0.1 ('' = none)
`;

/** --name, --name=true|false; undefined when absent. */
export function takeBool(args: string[], name: string): boolean | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const [arg = ''] = args.splice(i, 1);
  const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : 'true';
  if (value !== 'true' && value !== 'false')
    throw new UsageError(`${name} takes true or false, not ${JSON.stringify(value)}`);
  return value === 'true';
}

/** Takes the route flags out of args (an empty --exit-node= or --advertise-routes= clears). */
export function takeRouteFlags(args: string[]): RouteFlags {
  const f: RouteFlags = {};
  const exitNode = takeValueOrEmpty(args, '--exit-node');
  if (exitNode !== undefined) f.exitNode = exitNode.trim();
  const lan = takeBool(args, '--exit-node-allow-lan-access');
  if (lan !== undefined) f.exitNodeAllowLANAccess = lan;
  const routeAll = takeBool(args, '--accept-routes');
  if (routeAll !== undefined) f.routeAll = routeAll;
  const advExit = takeBool(args, '--advertise-exit-node');
  if (advExit !== undefined) f.advertiseExitNode = advExit;
  const adv = takeValueOrEmpty(args, '--advertise-routes');
  if (adv !== undefined) {
    try {
      f.advertiseRoutes = parseAdvertiseRoutes(adv.split(','));
    } catch (e) {
      if (e instanceof RouteError) throw new UsageError(`--advertise-routes: ${e.message}`);
      throw e;
    }
  }
  const forwards = takeValueOrEmpty(args, '--forward-ports');
  if (forwards !== undefined) {
    try {
      f.forwardPorts = forwards.trim() === '' ? [] : formatForwardPorts(parseForwardPorts(forwards.split(',')));
    } catch (e) {
      if (e instanceof ForwardPortsError) throw new UsageError(`--forward-ports: ${e.message}`);
      throw e;
    }
  }
  return f;
}

/** Like takeOption, but `--name=` (empty) is a value: it means "none". */
function takeValueOrEmpty(args: string[], name: string): string | undefined {
  const eq = args.findIndex((a) => a.startsWith(`${name}=`));
  if (eq >= 0) return args.splice(eq, 1)[0].slice(name.length + 1);
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value (${name}= for none)`);
  args.splice(i, 2);
  return v;
}

export function hasRouteFlags(f: RouteFlags): boolean {
  return Object.values(f).some((v) => v !== undefined);
}

/** The prefs the flags ask for; the exit node resolved against the peers status lists. Throws one sentence. */
export function routePrefsOf(f: RouteFlags, status: Pick<StatusSnapshot, 'peers'>): Partial<Prefs> {
  const p: Partial<Prefs> = {};
  if (f.exitNode !== undefined) {
    try {
      p.exitNodeID = f.exitNode === '' ? '' : resolveExitNode(status.peers, f.exitNode).stableID;
    } catch (e) {
      if (e instanceof ExitNodeChoiceError) throw new UsageError(`--exit-node: ${e.message}`);
      throw e;
    }
  }
  if (f.exitNodeAllowLANAccess !== undefined) p.exitNodeAllowLANAccess = f.exitNodeAllowLANAccess;
  if (f.routeAll !== undefined) p.routeAll = f.routeAll;
  if (f.advertiseExitNode !== undefined) p.advertiseExitNode = f.advertiseExitNode;
  if (f.advertiseRoutes !== undefined) p.advertiseRoutes = f.advertiseRoutes;
  if (f.forwardPorts !== undefined) p.forwardPorts = f.forwardPorts;
  return p;
}

/** One line about the exit node in use, for `set` and `status`; undefined when none is chosen. */
export function exitNodeLine(s: Pick<StatusSnapshot, 'exitNode'>): string | undefined {
  const e = s.exitNode;
  if (!e) return undefined;
  const state = !e.active
    ? 'not available: internet traffic is held'
    : e.online === false
      ? 'offline: internet traffic is held'
      : 'in use';
  return `# Exit node: ${e.name} (${state})`;
}

/** The port forwards, for `status`; undefined when there are none. */
export function forwardPortsLine(s: Pick<StatusSnapshot, 'prefs'>): string | undefined {
  const forwards = s.prefs?.forwardPorts ?? [];
  if (forwards.length === 0) return undefined;
  const each = forwards.map((f) => {
    const [from, to = from] = f.split('=');
    return `${from} → 127.0.0.1:${to}`;
  });
  return `# Port forwards (userspace networking): ${each.join(', ')}`;
}

/** The route marks after a peer's status column: "exit node", "offers exit node", its subnets. */
export function routeMarks(p: PeerSummary): string {
  const marks: string[] = [];
  if (p.exitNode) marks.push('exit node');
  else if (p.exitNodeOption) marks.push('offers exit node');
  if (p.routes.length > 0) marks.push(`routes ${p.routes.join(',')}`);
  return marks.join('; ');
}
