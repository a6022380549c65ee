// `trellis set` (the route prefs) and `trellis exit-node list` (the peers offering an exit node).
import type { PeerSummary } from '../engine/protocol.ts';
import { noMoreArgs, resolveSocketPath, takeOption, takeSwitch, UsageError } from './paths.ts';
import {
  exitNodeLine,
  forwardPortsLine,
  hasRouteFlags,
  ROUTE_FLAGS_HELP,
  routePrefsOf,
  takeRouteFlags,
} from './route-flags.ts';
import { alignColumns, printable, withClient } from './tailnet.ts';

export const SET_USAGE = 'trellis set [route flags] [--socket PATH]';
export const EXIT_NODE_USAGE = 'trellis exit-node list [--json] [--socket PATH]';

/** `trellis set`: changes the route prefs (at least one flag). */
export async function runSet(args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`usage: ${SET_USAGE}\n\n${ROUTE_FLAGS_HELP}`);
    return 0;
  }
  return verb('set', SET_USAGE, async () => {
    const socket = resolveSocketPath(takeOption(args, '--socket'));
    const flags = takeRouteFlags(args);
    noMoreArgs(args);
    if (!hasRouteFlags(flags)) throw new UsageError('nothing to set: give at least one flag');
    return withClient(socket, async (client) => {
      const prefs = routePrefsOf(flags, await client.request('status', {}));
      await client.request('setPrefs', prefs);
      const s = await client.request('status', {});
      for (const line of [exitNodeLine(s), flags.forwardPorts ? forwardPortsLine(s) : undefined]) {
        if (line) process.stdout.write(`${printable(line)}\n`);
      }
      return 0;
    });
  });
}

/** `trellis exit-node list`: the peers offering an exit node. */
export async function runExitNode(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'list') {
    process.stderr.write(`usage: ${EXIT_NODE_USAGE}\n`);
    return sub === '-h' || sub === '--help' ? 0 : 2;
  }
  return verb('exit-node list', EXIT_NODE_USAGE, async () => {
    const socket = resolveSocketPath(takeOption(rest, '--socket'));
    const json = takeSwitch(rest, '--json');
    noMoreArgs(rest);
    return withClient(socket, async (client) => {
      const s = await client.request('status', {});
      const offers = s.peers.filter((p) => p.exitNodeOption);
      if (json) process.stdout.write(`${JSON.stringify(offers, null, 2)}\n`);
      else process.stdout.write(formatExitNodeList(offers));
      return 0;
    });
  });
}

async function verb(name: string, usage: string, f: () => Promise<number>): Promise<number> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`trellis ${name}: ${e.message}\nusage: ${usage}\n`);
      return 2;
    }
    process.stderr.write(`trellis ${name}: ${printable(e instanceof Error ? e.message : String(e))}\n`);
    return 1;
  }
}

/** Latency of the peer's direct or relayed path, when a ping measured one. */
function latencyText(p: PeerSummary): string {
  const ms = p.path?.latencyMs;
  return typeof ms === 'number' ? `${Math.round(ms * 10) / 10} ms` : '-';
}

/** The exit-node list as `tailscale exit-node list` shows it: address, name, status, latency. */
export function formatExitNodeList(offers: PeerSummary[]): string {
  if (offers.length === 0) return 'No peer offers an exit node.\n';
  const rows = [...offers]
    .sort((a, b) => (a.dnsName || a.name).localeCompare(b.dnsName || b.name))
    .map((p) => [
      p.addresses[0] ?? '-',
      p.dnsName || p.name,
      p.online === true ? 'online' : p.online === false ? 'offline' : '-',
      latencyText(p),
      p.exitNode ? 'in use' : '',
    ]);
  return `${alignColumns([['IP', 'HOSTNAME', 'STATUS', 'LATENCY', ''], ...rows]).join('\n')}\n`;
}
