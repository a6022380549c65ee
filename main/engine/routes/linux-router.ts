// Policy routing for an exit node and subnet routes on Linux, the way tailscaled does it (docs/protocol/routes.md): our routes
// in table 52, and ip rules in both families —
//   5210 fwmark 0x80000/0xff0000 lookup main      (the engine's own sockets: control, DERP, WireGuard UDP, STUN)
//   5230 fwmark 0x80000/0xff0000 lookup default
//   5250 fwmark 0x80000/0xff0000 unreachable      (marked traffic never falls into table 52)
//   5270 lookup 52                                (everything else: the tunnel's routes first)
// Table 52 holds the accepted subnets and, with an exit node, both default routes into the TUN; loopback is
// thrown back to main always, the physical interfaces' LANs only with allow-LAN-access. Changes are made by
// difference (replace what is wanted, delete what is not), never flush-and-refill: a moment without the default
// route would send traffic to the internet outside the tunnel.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { formatAddress, parsePrefix } from '../packet/ip.ts';
import { BYPASS_MARK, BYPASS_MASK } from './bypass-socket.ts';

const exec = promisify(execFile);

export const ROUTE_TABLE = 52;
const MARK = `0x${BYPASS_MARK.toString(16)}/0x${BYPASS_MASK.toString(16)}`;

/** The rules, in each family, as `ip rule add` arguments. */
export const POLICY_RULES: ReadonlyArray<{ pref: number; args: string[] }> = [
  { pref: 5210, args: ['fwmark', MARK, 'table', 'main'] },
  { pref: 5230, args: ['fwmark', MARK, 'table', 'default'] },
  { pref: 5250, args: ['fwmark', MARK, 'unreachable'] },
  { pref: 5270, args: ['table', String(ROUTE_TABLE)] },
];

export interface RoutePlan {
  tunName: string;
  /** Accepted subnets (canonical CIDRs, both families). */
  subnets: string[];
  /** An exit node is chosen (even offline or gone): both default routes go into the tunnel. */
  exitNode: boolean;
  /** With an exit node: the LANs of the physical interfaces stay direct. */
  allowLAN: boolean;
}

export type Runner = (args: string[]) => Promise<string>;

export const runIp: Runner = async (args) => {
  try {
    const { stdout } = await exec('ip', args, { timeout: 10_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`);
  }
};

/** One route of table 52 as we want it (or as `ip -j route show` lists it). */
export interface TableRoute {
  type: 'unicast' | 'throw';
  dst: string;
}

const LOOPBACK = { 4: '127.0.0.0/8', 6: '::1/128' } as const;

function familyOf(cidr: string): 4 | 6 {
  return cidr.includes(':') ? 6 : 4;
}

/** What table 52 should hold in one family, from the plan and the LAN prefixes of the physical interfaces. */
export function wantedRoutes(plan: RoutePlan, family: 4 | 6, lans: string[]): TableRoute[] {
  const out: TableRoute[] = plan.subnets.filter((s) => familyOf(s) === family).map((dst) => ({ type: 'unicast', dst }));
  if (plan.exitNode) {
    out.push({ type: 'unicast', dst: 'default' });
    out.push({ type: 'throw', dst: LOOPBACK[family] });
    if (plan.allowLAN) {
      for (const l of lans) if (familyOf(l) === family) out.push({ type: 'throw', dst: l });
    }
  }
  const seen = new Set<string>();
  return out.filter((r) => !seen.has(r.dst) && seen.add(r.dst));
}

/** The prefixes of the physical interfaces' addresses (not the TUN, not loopback, not link-local), from `ip -j addr`. */
export function lanPrefixes(addrJson: string, tunName: string): string[] {
  let links: Array<{ ifname?: string; addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }> }>;
  try {
    links = JSON.parse(addrJson);
  } catch {
    return [];
  }
  const out = new Set<string>();
  for (const l of Array.isArray(links) ? links : []) {
    if (!l.ifname || l.ifname === tunName || l.ifname === 'lo') continue;
    for (const a of l.addr_info ?? []) {
      if (typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      if (a.local.toLowerCase().startsWith('fe80:')) continue;
      try {
        const p = parsePrefix(`${a.local}/${a.prefixlen}`);
        if (p.bits === 0) continue;
        out.add(`${formatAddress(p.address)}/${p.bits}`);
      } catch {}
    }
  }
  return [...out].sort();
}

/** Normalizes `ip -j route show table 52` entries to TableRoute (dst as ip prints it: host routes without /len). */
function listedRoutes(json: string): TableRoute[] {
  let rows: Array<{ dst?: string; type?: string }>;
  try {
    rows = JSON.parse(json || '[]');
  } catch {
    return [];
  }
  return (Array.isArray(rows) ? rows : []).map((r) => ({
    type: r.type === 'throw' ? 'throw' : 'unicast',
    dst: String(r.dst ?? ''),
  }));
}

/** `ip` prints host routes without their length and IPv6 compressed; compare in that form. */
function printedDst(dst: string): string {
  if (dst === 'default') return dst;
  const p = parsePrefix(dst);
  const full = p.address.length * 8;
  return p.bits === full ? formatAddress(p.address) : `${formatAddress(p.address)}/${p.bits}`;
}

async function rulesPresent(run: Runner, family: 4 | 6): Promise<Set<number>> {
  let rows: Array<{ priority?: number; table?: string; action?: string; fwmark?: string }>;
  try {
    rows = JSON.parse((await run([`-${family}`, '-j', 'rule', 'show'])) || '[]');
  } catch {
    rows = [];
  }
  return new Set(rows.map((r) => r.priority ?? -1));
}

/** Brings rules and table 52 to the plan (both families). */
export async function applyLinuxRoutes(plan: RoutePlan, run: Runner = runIp): Promise<void> {
  const lans = plan.exitNode && plan.allowLAN ? lanPrefixes(await run(['-j', 'addr', 'show']), plan.tunName) : [];
  for (const family of [4, 6] as const) {
    const wanted = wantedRoutes(plan, family, lans);
    // Routes first, then the rules that make them count: no moment with the rules and a half-filled table.
    for (const r of wanted) {
      const route = r.type === 'throw' ? ['throw', r.dst] : [r.dst, 'dev', plan.tunName];
      await run([`-${family}`, 'route', 'replace', ...route, 'table', String(ROUTE_TABLE)]);
    }
    const keep = new Set(wanted.map((r) => `${r.type} ${printedDst(r.dst)}`));
    const listed = listedRoutes(await run([`-${family}`, '-j', 'route', 'show', 'table', String(ROUTE_TABLE)]));
    for (const r of listed) {
      if (keep.has(`${r.type} ${r.dst}`)) continue;
      const route = r.type === 'throw' ? ['throw', r.dst] : [r.dst];
      await run([`-${family}`, 'route', 'del', ...route, 'table', String(ROUTE_TABLE)]).catch(() => '');
    }
    const present = await rulesPresent(run, family);
    for (const rule of POLICY_RULES) {
      if (!present.has(rule.pref)) await run([`-${family}`, 'rule', 'add', 'pref', String(rule.pref), ...rule.args]);
    }
  }
}

/** Takes away our rules (matched in full, so nobody else's is touched) and everything in table 52. */
export async function removeLinuxRoutes(run: Runner = runIp): Promise<void> {
  const errors: string[] = [];
  for (const family of [4, 6] as const) {
    for (const rule of POLICY_RULES) {
      // A rule added twice (a crash between add and record) is deleted until none is left, at most a few times.
      for (let i = 0; i < 4; i++) {
        try {
          await run([`-${family}`, 'rule', 'del', 'pref', String(rule.pref), ...rule.args]);
        } catch {
          break;
        }
      }
    }
    try {
      await run([`-${family}`, 'route', 'flush', 'table', String(ROUTE_TABLE)]);
    } catch (e) {
      // An empty or absent table is what we want; anything else is reported.
      if (!/FIB table does not exist|No such|Nothing to flush/i.test((e as Error).message))
        errors.push((e as Error).message);
    }
  }
  if (errors.length > 0) throw new Error(errors.join('; '));
}
