// Forwarding for what peers send through us while we offer routes (Linux), as tailscaled's netfilter runner does it,
// in chains of our own: packets coming in from the TUN get the mark 0x40000, marked packets are accepted in FORWARD
// and masqueraded in POSTROUTING (SNAT: the LAN answers this host, which knows the way back into the tunnel).
// What was installed is written to the state dir first, so a daemon killed with its rules in place removes them when
// it starts again. The kernel's forwarding switches are the host's: like tailscaled, we only warn when they are off.
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** tailscaled's "this packet came from the tunnel" mark, under its mask. */
export const FORWARD_MARK = '0x40000/0xff0000';
export const FORWARD_CHAIN = 'trellis-forward';
export const NAT_CHAIN = 'trellis-postrouting';
const STATE_FILE = 'forwarding.json';
const CGNAT = '100.64.0.0/10';

export interface ChainSpec {
  tool: 'iptables' | 'ip6tables';
  table: 'filter' | 'nat';
  /** The built-in chain that jumps to ours. */
  parent: 'FORWARD' | 'POSTROUTING';
  chain: string;
  rules: string[][];
}

/** The chains and rules for one family (tailscaled's ts-forward and ts-postrouting, renamed). */
export function forwardingChains(tun: string, family: 4 | 6): ChainSpec[] {
  const tool = family === 4 ? 'iptables' : 'ip6tables';
  const forward: string[][] = [
    ['-i', tun, '-j', 'MARK', '--set-mark', FORWARD_MARK],
    ['-m', 'mark', '--mark', FORWARD_MARK, '-j', 'ACCEPT'],
    ...(family === 4 ? [['-o', tun, '-s', CGNAT, '-j', 'DROP']] : []),
    ['-o', tun, '-j', 'ACCEPT'],
  ];
  return [
    { tool, table: 'filter', parent: 'FORWARD', chain: FORWARD_CHAIN, rules: forward },
    {
      tool,
      table: 'nat',
      parent: 'POSTROUTING',
      chain: NAT_CHAIN,
      rules: [['-m', 'mark', '--mark', FORWARD_MARK, '-j', 'MASQUERADE']],
    },
  ];
}

/** The forwarding switches that are off for the families we offer ('' when all are on or cannot be read). */
export async function forwardingOffWarning(families: ReadonlyArray<4 | 6>): Promise<string> {
  const off: string[] = [];
  const files: Record<4 | 6, [string, string]> = {
    4: ['/proc/sys/net/ipv4/ip_forward', 'net.ipv4.ip_forward'],
    6: ['/proc/sys/net/ipv6/conf/all/forwarding', 'net.ipv6.conf.all.forwarding'],
  };
  for (const f of families) {
    const [file, name] = files[f];
    const v = await readFile(file, 'utf8').catch(() => '');
    if (v.trim() === '0') off.push(name);
  }
  if (off.length === 0) return '';
  return `This node offers routes, but IP forwarding is off (${off.join(', ')} = 0), so peers cannot reach them through it.`;
}

interface Installed {
  tun: string;
  chains: Array<Omit<ChainSpec, 'rules'>>;
}

async function tool(cmd: string, args: string[]): Promise<void> {
  try {
    await run(cmd, ['-w', '5', ...args], { timeout: 15_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

async function quietly(cmd: string, args: string[]): Promise<boolean> {
  return tool(cmd, args).then(
    () => true,
    () => false,
  );
}

/** Installs and removes our forwarding chains; one instance per daemon, on the engine's thread. */
export class LinuxForwarding {
  private installed: Installed | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly stateDir: string,
    private readonly log: (m: string) => void,
  ) {}

  /** Chains left behind by a daemon that was killed: removed as they were recorded. */
  recover(): Promise<void> {
    return this.serial(async () => {
      const raw = await readFile(path.join(this.stateDir, STATE_FILE), 'utf8').catch(() => '');
      if (!raw) return;
      let left: Installed | undefined;
      try {
        left = JSON.parse(raw) as Installed;
      } catch {}
      if (left && Array.isArray(left.chains)) {
        this.log(`forwarding: removing the rules a previous run left (${left.chains.length} chains)`);
        await removeChains(left.chains);
      }
      await rm(path.join(this.stateDir, STATE_FILE), { force: true });
    });
  }

  /** Forwarding for these families through this TUN, or none (undefined). Resolves what failed ('' = nothing). */
  sync(want: { tun: string; families: Array<4 | 6> } | undefined): Promise<string> {
    let problems = '';
    return this.serial(async () => {
      const key = want ? `${want.tun}:${want.families.join(',')}` : '';
      const have = this.installed ? `${this.installed.tun}:${this.familiesOf(this.installed).join(',')}` : '';
      if (key === have) return;
      if (this.installed) await this.remove();
      if (!want || want.families.length === 0) return;
      const specs = want.families.flatMap((f) => forwardingChains(want.tun, f));
      const record: Installed = { tun: want.tun, chains: specs.map(({ rules: _, ...c }) => c) };
      // Recorded before the first rule goes in: a crash halfway leaves a record of all there may be.
      await writeFile(path.join(this.stateDir, STATE_FILE), JSON.stringify(record), { mode: 0o600 });
      this.installed = record;
      const failed: string[] = [];
      for (const s of specs) {
        // One family failing (no ip6tables, no IPv6 NAT) leaves the other working.
        if (failed.some((f) => f.startsWith(s.tool))) continue;
        await installChain(s).catch((e: Error) => failed.push(e.message));
      }
      problems = failed.join('; ');
      this.log(
        `forwarding: rules for ${want.tun} installed (IPv${want.families.join(' and IPv')})${problems ? `, except: ${problems}` : ''}`,
      );
    }).then(() => problems);
  }

  private familiesOf(i: Installed): Array<4 | 6> {
    return [...new Set(i.chains.map((c) => (c.tool === 'iptables' ? 4 : 6) as 4 | 6))];
  }

  private async remove(): Promise<void> {
    const i = this.installed;
    if (!i) return;
    await removeChains(i.chains);
    this.installed = undefined;
    await rm(path.join(this.stateDir, STATE_FILE), { force: true });
    this.log(`forwarding: rules for ${i.tun} removed`);
  }

  private serial(f: () => Promise<void>): Promise<void> {
    const next = this.queue.then(f);
    this.queue = next.catch(() => {});
    return next;
  }
}

async function installChain(s: ChainSpec): Promise<void> {
  const t = ['-t', s.table];
  // A chain of ours may exist already (another profile's run, a failed removal): reused, emptied first.
  if (!(await quietly(s.tool, [...t, '-N', s.chain]))) await tool(s.tool, [...t, '-F', s.chain]);
  for (const r of s.rules) await tool(s.tool, [...t, '-A', s.chain, ...r]);
  if (!(await quietly(s.tool, [...t, '-C', s.parent, '-j', s.chain]))) {
    await tool(s.tool, [...t, '-I', s.parent, '1', '-j', s.chain]);
  }
}

/** Removes every jump to our chains, then the chains; what is already gone is no error. */
async function removeChains(chains: Array<Omit<ChainSpec, 'rules'>>): Promise<void> {
  for (const c of chains) {
    if (c.chain !== FORWARD_CHAIN && c.chain !== NAT_CHAIN) continue; // a hostile record names no chain of others
    if (c.tool !== 'iptables' && c.tool !== 'ip6tables') continue;
    const t = ['-t', c.table === 'nat' ? 'nat' : 'filter'];
    const parent = c.table === 'nat' ? 'POSTROUTING' : 'FORWARD';
    for (let i = 0; i < 16 && (await quietly(c.tool, [...t, '-D', parent, '-j', c.chain])); i++);
    await quietly(c.tool, [...t, '-F', c.chain]);
    await quietly(c.tool, [...t, '-X', c.chain]);
  }
}
