// Strict reverse-path filtering (rp_filter=1) against the bypass mark: replies to the engine's own connections
// arrive unmarked, the kernel checks their source against table 52 (the default route into the TUN) and drops them
// as spoofed. tailscaled's answer, used here while that filter is on: conntrack keeps the mark of what we sent
// (CONNMARK save on OUTPUT, restore on PREROUTING) and net.ipv4.conf.all.src_valid_mark=1 lets the check use it.
// Loose (2) or no filtering needs none of it, and then nothing is touched.

import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { BYPASS_MARK, BYPASS_MASK } from './bypass-socket.ts';

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
