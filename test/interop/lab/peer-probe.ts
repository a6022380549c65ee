// What a tailscaled node sees of a peer (docs/parity.md): raw HTTP requests to the peer's PeerAPI from inside the
// caller's namespace (one small node client per batch, paths sent as given), each `tailscale ping` type and
// `tailscale whois`, reduced to the parts the parity test compares.
import type { Namespace } from './netns.ts';
import type { Tailscaled } from './tailscaled.ts';

export interface ProbeRequest {
  method: string;
  path: string;
  headers?: Record<string, string>; // Host defaults to ip:port of the base URL
  body?: string;
}

export interface ProbeAnswer {
  status: number; // 0: the connection failed (error says how)
  headers: Record<string, string>;
  body: string; // first 400 characters
  error?: string;
  /** h2c probes only: what the session spoke ("h2c"). */
  protocol?: string;
}

// argv: base URL, JSON list of requests. Prints a JSON list of answers. Sequential, 10 s per request.
const CLIENT = `
const http = require('http');
const [base, list] = process.argv.slice(1);
const u = new URL(base);
const one = (q) => new Promise((resolve) => {
  const headers = { host: u.host, ...(q.headers || {}) };
  if (q.body !== undefined) headers['content-length'] = Buffer.byteLength(q.body);
  const r = http.request({ host: u.hostname.replace(/^\\[|\\]$/g, ''), port: u.port, path: q.path, method: q.method, headers, agent: false },
    (res) => { let b = ''; res.setEncoding('utf8'); res.on('data', (c) => { if (b.length < 400) b += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: b.slice(0, 400) }));
      res.on('error', (e) => resolve({ status: res.statusCode, headers: res.headers, body: b, error: e.code })); });
  r.setTimeout(10000, () => r.destroy(new Error('timeout')));
  r.on('error', (e) => resolve({ status: 0, headers: {}, body: '', error: e.code || e.message }));
  r.end(q.body);
});
(async () => { const out = []; for (const q of JSON.parse(list)) out.push(await one(q)); console.log(JSON.stringify(out)); })();
`;

/** Sends each request to the PeerAPI at base (http://ip:port) from inside ns, in order. */
export async function probePeerApi(ns: Namespace, base: string, requests: ProbeRequest[]): Promise<ProbeAnswer[]> {
  const out = await ns.exec([process.execPath, '-e', CLIENT, base, JSON.stringify(requests)], {
    timeoutMs: 15_000 * Math.max(1, requests.length),
  });
  return JSON.parse(out) as ProbeAnswer[];
}

// argv: base URL, JSON list of requests. The same over cleartext HTTP/2 with prior knowledge (h2c), all on one
// session; each answer says which protocol the session spoke ("h2c" when the server took the preface).
const H2C_CLIENT = `
const http2 = require('http2');
const [base, list] = process.argv.slice(1);
const u = new URL(base);
const session = http2.connect(base);
session.on('error', () => {});
const one = (q) => new Promise((resolve) => {
  const { host, ...rest } = q.headers || {};
  const headers = { ':method': q.method, ':path': q.path, ':authority': host || u.host, ...rest };
  if (q.body !== undefined) headers['content-length'] = String(Buffer.byteLength(q.body));
  let s;
  try { s = session.request(headers, { endStream: q.body === undefined }); }
  catch (e) { return resolve({ status: 0, headers: {}, body: '', error: e.code || e.message }); }
  let status = 0, h = {}, b = '';
  s.on('response', (r) => { status = Number(r[':status']); for (const [k, v] of Object.entries(r)) if (!k.startsWith(':')) h[k] = String(v); });
  s.setEncoding('utf8');
  s.on('data', (c) => { if (b.length < 400) b += c; });
  s.on('end', () => resolve({ status, headers: h, body: b.slice(0, 400), protocol: session.alpnProtocol }));
  s.on('error', (e) => resolve({ status, headers: h, body: b, error: e.code || e.message, protocol: session.alpnProtocol }));
  s.setTimeout(10000, () => s.close());
  if (q.body !== undefined) s.end(q.body);
});
(async () => { const out = []; for (const q of JSON.parse(list)) out.push(await one(q)); console.log(JSON.stringify(out)); session.close(); })();
`;

/** Sends each request to the PeerAPI at base over h2c (one HTTP/2 session) from inside ns, in order. */
export async function probePeerApiH2c(ns: Namespace, base: string, requests: ProbeRequest[]): Promise<ProbeAnswer[]> {
  const out = await ns.exec([process.execPath, '-e', H2C_CLIENT, base, JSON.stringify(requests)], {
    timeoutMs: 15_000 * Math.max(1, requests.length),
  });
  return JSON.parse(out) as ProbeAnswer[];
}

export interface PingTypeResult {
  ok: boolean; // exit 0 and a pong (or the peerapi hit) printed
  line: string; // the last line printed
}

/** `tailscale ping <args> <ip>` from ts: whether it answered, and the last line it printed. */
export async function tailscalePing(ts: Tailscaled, ip: string, args: string[]): Promise<PingTypeResult> {
  const r = await ts.cli(['ping', '--timeout=3s', ...args, ip], 30_000);
  const lines = `${r.stdout}${r.stderr}`.trim().split('\n');
  const ok = r.code === 0 && /^(pong from|hit peerapi of) /m.test(r.stdout);
  return { ok, line: lines.at(-1) ?? '' };
}

export interface WhoisResult {
  ok: boolean;
  machine: string; // "Name:" of the Machine block
  user: string; // "Name:" of the User block
  text: string;
}

/** `tailscale whois <target>` from ts (target: ip or ip:port). */
export async function tailscaleWhois(ts: Tailscaled, target: string): Promise<WhoisResult> {
  const r = await ts.cli(['whois', target], 10_000);
  const text = `${r.stdout}${r.stderr}`.trim();
  const names = [...r.stdout.matchAll(/^\s*Name:\s*(\S+)/gm)].map((m) => m[1] ?? '');
  return { ok: r.code === 0, machine: names[0] ?? '', user: names[1] ?? '', text };
}
