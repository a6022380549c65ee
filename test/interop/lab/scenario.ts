// Shared pieces of the NAT-lab scenario tests (tailnet-nat, tailnet-derp-regions, tailnet-recovery): a node per
// site (Trellis, or tailscaled where named), claims run as subtests with one dump of every daemon's output and the
// routers' NAT state on failure, and the traffic checks both ways (ICMP, hashed TCP) with their timings.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import type { PeerPath } from '../../../main/engine/protocol.ts';
import { buildNatLab, type NatLab, type NatSiteSpec } from './nat.ts';
import type { Lab } from './netns.ts';
import { pingFrom, startTrellisNode, type TailnetLabOptions, type TrellisNode, waitUntil } from './tailnet.ts';
import { startTailscaled, type Tailscaled } from './tailscaled.ts';
import { requireTools } from './tools.ts';
import { tcpTransfer } from './traffic.ts';

export const MB = 1024 * 1024;
export const TS_ENV = { TS_DEBUG_USE_DERP_HTTP: '1' };
export const secs = (t0: number): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Checks the lab's preconditions; false when the test was skipped. */
export function ready(t: TestContext): boolean {
  if (!requireTools(t, ['headscale', 'tailscaled', 'tailscale', 'ip', 'iptables', 'ping'])) return false;
  if (existsSync('/dev/net/tun')) return true;
  if (process.env.CI === 'true') throw new Error('NAT lab needs /dev/net/tun');
  t.skip('NAT lab needs /dev/net/tun');
  return false;
}

/** Runs claims as subtests; on any failure prints the daemons' output and the routers' NAT state once. */
export function claims(t: TestContext, dump: () => Promise<string>) {
  const failed: string[] = [];
  return {
    async claim(name: string, fn: (st: TestContext) => Promise<void>): Promise<boolean> {
      let ok = false;
      await t.test(name, async (st) => {
        try {
          await fn(st);
          ok = true;
        } catch (e) {
          failed.push(name);
          throw e;
        }
      });
      return ok;
    },
    async report(): Promise<void> {
      if (failed.length > 0) console.error(`[nat lab] ${t.name}: failed: ${failed.join('; ')}\n${await dump()}`);
    },
  };
}

export interface Side {
  label: string; // e.g. 'trellis a'
  host: NatLab['sites'][string]['host'];
  ip: string; // tailnet IPv4
}

/** Pings both ways at once (ICMP over the tunnel, 3 replies within deadlineS); throws naming the failed ones. */
export async function pingBothWays(st: TestContext, x: Side, y: Side, deadlineS: number): Promise<void> {
  const t0 = Date.now();
  const runs = [
    { what: `${x.label} → ${y.label} (${y.ip})`, ns: x.host, to: y.ip },
    { what: `${y.label} → ${x.label} (${x.ip})`, ns: y.host, to: x.ip },
  ];
  const res = await Promise.all(
    runs.map(async (r) => {
      const ok = r.to !== '' && (await pingFrom(r.ns, r.to, { count: 3, deadlineS }));
      st.diagnostic(`ping ${r.what}: ${ok ? `ok after ${secs(t0)}` : 'FAILED'}`);
      return ok ? '' : r.what;
    }),
  );
  const bad = res.filter(Boolean);
  assert.deepEqual(bad, [], `no echo replies within ${deadlineS} s: ${bad.join(', ')}`);
}

/** A hashed TCP transfer each way (sequentially); throws listing what went wrong. */
export async function transferBothWays(
  st: TestContext,
  x: Side,
  y: Side,
  bytes: number,
  timeoutMs: number,
): Promise<void> {
  const bad: string[] = [];
  const runs = [
    { what: `${x.label} → ${y.label}`, fromNs: x.host, toNs: y.host, toAddr: y.ip, port: 5001 },
    { what: `${y.label} → ${x.label}`, fromNs: y.host, toNs: x.host, toAddr: x.ip, port: 5002 },
  ];
  for (const { what, ...o } of runs) {
    try {
      const r = await tcpTransfer({ ...o, bytes, seed: o.port, timeoutMs });
      const mbps = (r.receivedBytes * 8) / 1e6 / Math.max(r.seconds, 1e-3);
      st.diagnostic(`tcp ${what}: ${r.receivedBytes} bytes in ${r.seconds.toFixed(2)} s (${mbps.toFixed(0)} Mbit/s)`);
      if (r.receivedBytes !== bytes) bad.push(`${what}: received ${r.receivedBytes} of ${bytes} bytes`);
      else if (r.receivedSha256 !== r.sentSha256) bad.push(`${what}: sha256 differs`);
    } catch (e) {
      bad.push(`${what}: ${(e as Error).message.slice(0, 1_500)}`);
    }
  }
  assert.deepEqual(bad, [], bad.join('\n'));
}

/** Trellis's path to the peer with tailnet address ip (undefined while it has none). */
export async function trellisPath(node: TrellisNode, ip: string): Promise<PeerPath | undefined> {
  return (await node.status()).peers.find((p) => p.addresses.includes(ip))?.path;
}

/** Polls (every 250 ms, ≤ ms) until Trellis reports a direct path to ip; the ms it took, or null. */
export async function msUntilDirect(node: TrellisNode, ip: string, ms: number): Promise<number | null> {
  const t0 = Date.now();
  for (let i = 0; i < Math.ceil(ms / 250) + 1 && Date.now() - t0 <= ms; i++) {
    const p = await trellisPath(node, ip).catch(() => undefined);
    if (p?.via === 'direct') return Date.now() - t0;
    await delay(250);
  }
  return null;
}

export const show = (p: PeerPath | undefined): string => JSON.stringify(p ?? null);

/** `trellis ping <ip> --count 3` (disco ping, direct or DERP) for the diagnostics: its last line. */
export async function trellisPing(node: TrellisNode, ip: string): Promise<string> {
  const r = await node.cli(['ping', ip, '--count', '3'], 20_000);
  const last = `${r.stdout}${r.stderr}`.trim().split('\n').at(-1) ?? '';
  return `${r.code === 0 ? '' : `exit ${r.code ?? r.signal}: `}${last}`;
}

/** Builds the NAT lab and one node per site; tailscaled where `ts` names the site, Trellis elsewhere. */
export async function setup(
  lab: Lab,
  specs: NatSiteSpec[],
  ts?: string,
  opts: TailnetLabOptions & { beforeNodes?: (nl: NatLab) => Promise<void> } = {},
) {
  const nl = await buildNatLab(lab, specs, opts);
  await opts.beforeNodes?.(nl);
  const { headscale: hs, authKey } = nl.tailnet;
  const trellis: Record<string, TrellisNode> = {};
  let tsd: Tailscaled | undefined;
  await Promise.all(
    specs.map(async ({ name }) => {
      const host = nl.site(name).host;
      if (name === ts) {
        tsd = await startTailscaled(host, { name, env: TS_ENV });
        await tsd.up({ loginServer: hs.url, authKey, hostname: `ts-${name}`, timeoutS: 30 });
      } else {
        trellis[name] = await startTrellisNode(host, {
          hostname: `trellis-${name}`,
          loginServer: hs.url,
          authKey,
          upTimeoutS: 30,
        });
      }
    }),
  );
  const dump = async (): Promise<string> => {
    const parts: string[] = [];
    for (const [name, n] of Object.entries(trellis)) {
      parts.push(`--- trellis ${name} status:\n${JSON.stringify(await n.status().catch((e: Error) => e.message))}`);
      parts.push(`--- trellis ${name} daemon output (tail):\n${n.output().slice(-8_000)}`);
    }
    if (tsd) parts.push(`--- tailscaled ${tsd.name} output (tail):\n${tsd.output().slice(-6_000)}`);
    for (const s of Object.values(nl.sites)) parts.push(await s.natState());
    return parts.join('\n');
  };
  return { nl, trellis, tsd, dump };
}

export function trellisSide(nl: NatLab, nodes: Record<string, TrellisNode>, name: string, ip: string): Side {
  if (!nodes[name]) throw new Error(`no trellis node at site ${name}`);
  return { label: `trellis ${name}`, host: nl.site(name).host, ip };
}

/** A Trellis node's PeerAPI base URL as tailscaled sees it (`tailscale status --json`: PeerAPIURL). */
export async function peerApiOf(ts: Tailscaled, ip: string): Promise<string> {
  return waitUntil('Trellis PeerAPIURL in tailscale status', 15_000, async () => {
    const s = await ts.status();
    const peers = Object.values(s.raw.Peer as Record<string, { TailscaleIPs?: string[]; PeerAPIURL?: string[] }>);
    // The URL's host exactly: "100.64.0.1" must not match "http://100.64.0.10:…".
    const host = ip.includes(':') ? `[${ip}]` : ip;
    const urls = peers.find((p) => p.TailscaleIPs?.includes(ip))?.PeerAPIURL ?? [];
    return urls.find((u) => URL.canParse(u) && new URL(u).host.startsWith(`${host}:`)) ?? null;
  });
}
