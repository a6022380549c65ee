// Pointing the OS resolver at quad-100 while connected with "accept DNS" on (docs/protocol/services.md §3.5), and putting it back.
// Linux: through systemd-resolved when /etc/resolv.conf is its stub (per-link DNS on the TUN, reverted on down);
// otherwise /etc/resolv.conf itself: the original is saved in the state directory first (0600) and written back byte
// for byte on down — or, after a crash, when the engine next starts. Files are rewritten in place, never renamed
// over, because /etc/resolv.conf may be a bind mount (containers, `ip netns exec`). macOS: /etc/resolver/<domain>
// files (split DNS for the tailnet's domains, as non-sandboxed tailscaled does). Windows: the TUN interface's own DNS
// server via netsh. The macOS and Windows paths are written but not yet run anywhere (no such machine here).
import { execFile } from 'node:child_process';
import { mkdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const QUAD100 = '100.100.100.100';
const BACKUP = 'resolv.conf.before-trellis';
const HEADER = '# resolv.conf(5) written by Trellis while connected (MagicDNS); restored on disconnect.\n';

export interface OsDnsSettings {
  searchDomains: string[];
  /** The TUN, for systemd-resolved's per-link settings. */
  interfaceName: string;
}

/** The nameservers a resolv.conf lists (quad-100 excluded): quad-100's default route when control sets none. */
export function nameserversOf(resolvConf: string): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m?.[1] && m[1] !== QUAD100) out.push(m[1]);
  }
  return out;
}

export class OsDns {
  private mode: 'none' | 'file' | 'resolved' | 'macos' | 'windows' = 'none';
  private macosFiles: string[] = [];
  private written = '';
  /** Operations run one at a time, in order (apply, restore and recover all touch the same file). */
  private chain: Promise<unknown> = Promise.resolve();
  /** The nameservers the OS had before we took over (from the backup), for quad-100's default route. */
  previousNameservers: string[] = [];

  constructor(
    private readonly stateDir: string,
    private readonly log: (message: string) => void,
    private readonly resolvConf = '/etc/resolv.conf',
  ) {}

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.chain.then(f, f);
    this.chain = next.catch(() => {});
    return next;
  }

  private get backupPath(): string {
    return path.join(this.stateDir, BACKUP);
  }

  /** After a crash: a backup left behind means the file is still ours; put the original back. */
  recover(): Promise<void> {
    return this.serial(async () => {
      const saved = await readFile(this.backupPath, 'utf8').catch(() => undefined);
      if (saved === undefined) return;
      const current = await readFile(this.resolvConf, 'utf8').catch(() => '');
      if (current.startsWith(HEADER)) {
        await writeFile(this.resolvConf, saved);
        this.log(`restored ${this.resolvConf} left over from an earlier run`);
      }
      await rm(this.backupPath, { force: true });
    });
  }

  /** Points the OS at quad-100 (idempotent: rewrites only when the settings change). */
  apply(s: OsDnsSettings): Promise<void> {
    return this.serial(async () => {
      if (process.platform === 'darwin') return this.applyMacos(s);
      if (process.platform === 'win32') {
        await run('netsh', [
          'interface',
          'ipv4',
          'set',
          'dnsservers',
          `name=${s.interfaceName}`,
          'static',
          QUAD100,
          'primary',
        ]);
        this.mode = 'windows';
        return;
      }
      if (process.platform !== 'linux') return;
      if (await this.usesResolved()) {
        await run('resolvectl', ['dns', s.interfaceName, QUAD100]);
        await run('resolvectl', [
          'domain',
          s.interfaceName,
          ...s.searchDomains.map((d) => `~${d}`),
          ...s.searchDomains,
        ]);
        this.mode = 'resolved';
        return;
      }
      const content = `${HEADER}nameserver ${QUAD100}\n${s.searchDomains.length ? `search ${s.searchDomains.join(' ')}\n` : ''}`;
      if (this.mode === 'file' && content === this.written) return;
      if (this.mode !== 'file') {
        const original = await readFile(this.resolvConf, 'utf8').catch(() => '');
        if (!original.startsWith(HEADER)) {
          await writeFile(this.backupPath, original, { mode: 0o600 });
          this.previousNameservers = nameserversOf(original);
        }
      }
      await writeFile(this.resolvConf, content);
      this.mode = 'file';
      this.written = content;
      this.log(`${this.resolvConf} points at MagicDNS (${QUAD100})`);
    });
  }

  /** Puts the OS resolver back as it was. */
  restore(interfaceName: string): Promise<void> {
    return this.serial(async () => {
      if (this.mode === 'macos') {
        for (const f of this.macosFiles) await rm(f, { force: true });
        this.macosFiles = [];
      } else if (this.mode === 'windows') {
        await run('netsh', ['interface', 'ipv4', 'delete', 'dnsservers', `name=${interfaceName}`, 'all']).catch(
          () => {},
        );
      } else if (this.mode === 'resolved') {
        await run('resolvectl', ['revert', interfaceName]).catch(() => {});
      } else if (this.mode === 'file') {
        const saved = await readFile(this.backupPath, 'utf8').catch(() => undefined);
        const current = await readFile(this.resolvConf, 'utf8').catch(() => '');
        // Someone else (DHCP, the user) rewrote it meanwhile: theirs wins, ours is dropped.
        if (saved !== undefined && current === this.written) await writeFile(this.resolvConf, saved);
        await rm(this.backupPath, { force: true });
        this.log(`${this.resolvConf} restored`);
      }
      this.mode = 'none';
      this.written = '';
    });
  }

  /** One /etc/resolver/<domain> file per search domain: lookups under it go to quad-100. */
  private async applyMacos(s: OsDnsSettings): Promise<void> {
    const dir = '/etc/resolver';
    await mkdir(dir, { recursive: true });
    const wanted = s.searchDomains.filter((d) => /^[a-z0-9.-]+$/i.test(d)).map((d) => path.join(dir, d));
    for (const f of this.macosFiles) if (!wanted.includes(f)) await rm(f, { force: true });
    for (const f of wanted) await writeFile(f, `${HEADER}nameserver ${QUAD100}\n`);
    this.macosFiles = wanted;
    this.mode = 'macos';
  }

  private async usesResolved(): Promise<boolean> {
    const target = await readlink(this.resolvConf).catch(() => '');
    if (!target.includes('systemd/resolve')) return false;
    return run('resolvectl', ['--version']).then(
      () => true,
      () => false,
    );
  }
}
