// Strict reverse-path filtering (rp_filter=1) against the bypass mark: replies to the engine's own connections
// arrive unmarked, the kernel checks their source against table 52 (the default route into the TUN) and drops them
// as spoofed. tailscaled's answer, used here while that filter is on: conntrack keeps the mark of what we sent
// (CONNMARK save on OUTPUT, restore on PREROUTING) and net.ipv4.conf.all.src_valid_mark=1 lets the check use it.
// Loose (2) or no filtering needs none of it, and then nothing is touched.
// Connmark cannot help what nobody sent first: a LAN neighbour's ARP request for our address (the exit node's host
// refreshing its entry for us) is checked unmarked against table 52 too and dropped, and once the neighbour's entry
// ages out every direct packet to us dies there. Rules at pref 5260 send lookups from our LAN address to its own
// LAN to main: the reverse-path check of those requests passes, while unbound traffic still gets the tunnel's
// source address and route (the LAN stays in the tunnel without allow-LAN-access).

import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { formatAddress, parsePrefix } from '../packet/ip.ts';
import { BYPASS_MARK, BYPASS_MASK } from './bypass-socket.ts';
import type { Runner } from './linux-router.ts';

const exec = promisify(execFile);
const CONF = '/proc/sys/net/ipv4/conf';
const MASK = `0x${BYPASS_MASK.toString(16)}`;
const MARK = `0x${BYPASS_MARK.toString(16)}`;

/** The mangle rules, as `iptables -t mangle -A` arguments. */
export const CONNMARK_RULES: ReadonlyArray<string[]> = [
  `PREROUTING -m conntrack --ctstate ESTABLISHED,RELATED -j CONNMARK --restore-mark --nfmask ${MASK} --ctmask ${MASK}`,
  // Every marked packet, not only NEW ones as tailscaled (whose rules exist before any flow): flows opened before
  // the exit node was chosen (the map stream, WireGuard's UDP) get their mark saved with their next packet.
  `OUTPUT -m mark --mark ${MARK}/${MASK} -j CONNMARK --save-mark --nfmask ${MASK} --ctmask ${MASK}`,
].map((r) => r.split(' '));

export type IptablesRunner = (args: string[]) => Promise<void>;

export const runIptables: IptablesRunner = async (args) => {
  try {
    await exec('iptables', ['-w', '5', ...args], { timeout: 10_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`iptables ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`);
  }
};

async function readNumber(file: string): Promise<number | undefined> {
  try {
    return Number((await readFile(file, 'utf8')).trim());
  } catch {
    return undefined;
  }
}

/** True when some interface but the TUN and loopback filters strictly (the kernel uses max(all, interface)). */
export async function strictRpFilter(tunName: string): Promise<boolean> {
  const all = (await readNumber(`${CONF}/all/rp_filter`)) ?? 0;
  let names: string[];
  try {
    names = await readdir(CONF);
  } catch {
    return false;
  }
  for (const n of names) {
    if (n === 'all' || n === 'default' || n === 'lo' || n === tunName) continue;
    if (Math.max(all, (await readNumber(`${CONF}/${n}/rp_filter`)) ?? 0) === 1) return true;
  }
  return false;
}

/** net.ipv4.conf.all.src_valid_mark as it is now (to record before installing, and restore after). */
export async function srcValidMark(): Promise<string> {
  return (await readFile(`${CONF}/all/src_valid_mark`, 'utf8')).trim();
}

/** Installs the rules (those missing) and sets src_valid_mark. */
export async function installConnmark(run: IptablesRunner = runIptables): Promise<void> {
  for (const rule of CONNMARK_RULES) {
    try {
      await run(['-t', 'mangle', '-C', ...rule]);
    } catch {
      await run(['-t', 'mangle', '-A', ...rule]);
    }
  }
  if ((await srcValidMark()) !== '1') await writeFile(`${CONF}/all/src_valid_mark`, '1');
}

/** Takes the rules away (every copy) and puts src_valid_mark back as it was. */
export async function removeConnmark(previousSrcValidMark: string, run: IptablesRunner = runIptables): Promise<void> {
  for (const rule of CONNMARK_RULES) {
    for (let i = 0; i < 4; i++) {
      try {
        await run(['-t', 'mangle', '-D', ...rule]);
      } catch {
        break;
      }
    }
  }
  if (/^[01]$/.test(previousSrcValidMark)) await writeFile(`${CONF}/all/src_valid_mark`, previousSrcValidMark);
}

export const LAN_SOURCE_PREF = 5260;

/** `from <our IPv4 address> to <its LAN> table main` for each physical interface, from `ip -4 -j addr show`. */
export function lanSourceRules(addrJson: string, tunName: string): string[][] {
  let links: Array<{ ifname?: string; addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }> }>;
  try {
    links = JSON.parse(addrJson);
  } catch {
    return [];
  }
  const out = new Map<string, string[]>();
  for (const l of Array.isArray(links) ? links : []) {
    if (!l.ifname || l.ifname === tunName || l.ifname === 'lo') continue;
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet' || typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      try {
        const p = parsePrefix(`${a.local}/${a.prefixlen}`);
        if (p.bits === 0 || p.address.length !== 4) continue;
        const rule = ['from', a.local, 'to', `${formatAddress(p.address)}/${p.bits}`, 'table', 'main'];
        out.set(rule.join(' '), rule);
      } catch {}
    }
  }
  return [...out.values()];
}

/** Our pref-5260 rules as `ip -j rule` lists them, in the argument form above. */
async function presentLanSourceRules(run: Runner): Promise<string[]> {
  let rows: Array<{ priority?: number; src?: string; srclen?: number; dst?: string; dstlen?: number }>;
  try {
    rows = JSON.parse((await run(['-4', '-j', 'rule', 'show'])) || '[]');
  } catch {
    rows = [];
  }
  return (Array.isArray(rows) ? rows : [])
    .filter((r) => r.priority === LAN_SOURCE_PREF)
    .map((r) => `from ${r.src} to ${r.dst}/${r.dstlen} table main`);
}

/** Brings the pref-5260 rules to the LAN addresses the interfaces have now (added before stale ones go). */
export async function syncLanSourceRules(run: Runner, tunName: string): Promise<void> {
  const wanted = lanSourceRules(await run(['-4', '-j', 'addr', 'show']), tunName);
  const present = await presentLanSourceRules(run);
  for (const rule of wanted) {
    if (!present.includes(rule.join(' '))) await run(['-4', 'rule', 'add', 'pref', String(LAN_SOURCE_PREF), ...rule]);
  }
  const keep = new Set(wanted.map((r) => r.join(' ')));
  for (const text of present) {
    if (!keep.has(text)) await run(['-4', 'rule', 'del', 'pref', String(LAN_SOURCE_PREF), ...text.split(' ')]);
  }
}

/** Takes every pref-5260 rule away (a bounded number: a crash may have left some behind). */
export async function removeLanSourceRules(run: Runner): Promise<void> {
  for (let i = 0; i < 64; i++) {
    try {
      await run(['-4', 'rule', 'del', 'pref', String(LAN_SOURCE_PREF)]);
    } catch {
      return;
    }
  }
}
