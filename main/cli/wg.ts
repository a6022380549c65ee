// `trellis wg up|show`: plain WireGuard interfaces from wg-quick files, no tailnet involved.
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { closeControl, listInterfaces, requestStatus, serveControl } from '../engine/plainwg/control.ts';
import { type TunnelStatus, WgTunnel } from '../engine/plainwg/tunnel.ts';
import { ConfigError, parseWgQuick } from '../engine/wg/config-file.ts';
import type { WgTimers } from '../engine/wg/constants.ts';
import { formatBytes } from '../shared/format.ts';
import { formatDuration } from './format.ts';

const WG_USAGE = 'usage: trellis wg up <file.conf> [--name NAME] | trellis wg show [NAME] [--json]';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  args.splice(i, 2);
  return v;
}

export async function runWg(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'up') return wgUp(rest);
  if (sub === 'show') return wgShow(rest);
  process.stderr.write(`${WG_USAGE}\n`);
  return 2;
}

/** Test-only: TRELLIS_TEST_WG_TIMERS='{"rekeyAfterTime":3000}' shortens timers. Never set in production. */
function testTimers(): Partial<WgTimers> | undefined {
  const raw = process.env.TRELLIS_TEST_WG_TIMERS;
  if (!raw) return undefined;
  const parsed = JSON.parse(raw) as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(parsed)) if (typeof v === 'number' && v > 0) out[k] = v;
  return out as Partial<WgTimers>;
}

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

async function wgUp(args: string[]): Promise<number> {
  const name = flag(args, '--name');
  const file = args[0];
  if (!file || args.length > 1) {
    process.stderr.write(`${WG_USAGE}\n`);
    return 2;
  }
  const ifname = name ?? basename(file).replace(/\.conf$/, '');
  if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(ifname)) {
    process.stderr.write(`trellis: interface name ${JSON.stringify(ifname)} must be 1-15 letters, digits or _=+.-\n`);
    return 2;
  }
  let text: string;
  try {
    if (process.platform !== 'win32' && ((await stat(file)).mode & 0o007) !== 0) {
      process.stderr.write(`warning: ${file} is readable by other users, and it holds a private key\n`);
    }
    text = await readFile(file, 'utf8');
  } catch (e) {
    process.stderr.write(
      `trellis: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`,
    );
    return 1;
  }
  let config: ReturnType<typeof parseWgQuick>;
  try {
    config = parseWgQuick(text);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`trellis: ${file}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const tunnel = await WgTunnel.up({ name: ifname, config, log, timers: testTimers() });
  let server: Awaited<ReturnType<typeof serveControl>>;
  try {
    server = await serveControl(tunnel.name, () => tunnel.status());
  } catch (e) {
    await tunnel.down();
    throw e;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log(`${signal}: taking ${tunnel.name} down`);
      closeControl(server, tunnel.name);
      void tunnel.down().then(() => resolve(0));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

function printStatus(s: TunnelStatus): void {
  const out: string[] = [`interface: ${s.name}`, `  public key: ${s.publicKey}`, `  listening port: ${s.listenPort}`];
  const drops = Object.entries(s.drops).filter(([, n]) => n > 0);
  if (drops.length > 0) out.push(`  dropped: ${drops.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const nowS = Date.now() / 1000;
  for (const p of s.peers) {
    out.push('', `peer: ${p.publicKey}`);
    if (p.endpoint) out.push(`  endpoint: ${p.endpoint}`);
    out.push(`  allowed ips: ${p.allowedIPs.length > 0 ? p.allowedIPs.join(', ') : '(none)'}`);
    if (p.latestHandshake > 0) out.push(`  latest handshake: ${formatDuration(nowS - p.latestHandshake)} ago`);
    if (p.rxBytes + p.txBytes > 0)
      out.push(`  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent`);
    if (p.persistentKeepalive > 0) out.push(`  persistent keepalive: every ${p.persistentKeepalive} seconds`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

async function wgShow(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const names = args.filter((a) => a !== '--json');
  if (names.length > 1) {
    process.stderr.write(`${WG_USAGE}\n`);
    return 2;
  }
  const targets = names.length === 1 ? names : listInterfaces();
  if (targets.length === 0) {
    if (json) process.stdout.write('[]\n');
    else process.stderr.write('trellis: no WireGuard interfaces are running\n');
    return json ? 0 : 1;
  }
  const statuses: TunnelStatus[] = [];
  for (const n of targets) statuses.push(await requestStatus(n));
  if (json) {
    process.stdout.write(`${JSON.stringify(names.length === 1 ? statuses[0] : statuses, null, 2)}\n`);
  } else {
    statuses.forEach((s, i) => {
      if (i > 0) process.stdout.write('\n');
      printStatus(s);
    });
  }
  return 0;
}
