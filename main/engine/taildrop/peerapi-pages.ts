// The PeerAPI's answers beyond Taildrop, as a tailscaled peer gets them from tailscaled (docs/parity.md): the
// greeting at "/" (control's and `tailscale ping --peerapi`'s liveness check), Wake-on-LAN for the same untagged
// user, and for everything tailscaled serves only with a capability Trellis is never granted (debug pages, Funnel
// ingress, Taildrive, the connector) the answer tailscaled gives a peer without it. Unknown paths get its 404.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendWakeOnLan } from './wake-on-lan.ts';

/** What the pages need to know of the caller (a subset of the PeerAPI's Caller). */
export interface PageCaller {
  /** The caller's MagicDNS name without the trailing dot. */
  name: string;
  /** The caller's user's display name ('' when control sent none). */
  userName?: string;
  /** Same user as this node (tagged or not): the greeting says the caller owns this node. */
  sameUser?: boolean;
  /** Same user and neither node tagged: may wake machines on our LAN. */
  sameUntaggedUser?: boolean;
}

/** tailscaled serves these to a peer only when this node has the debug capability; Trellis never offers them. */
const DEBUG_PATHS = new Set([
  '/v0/goroutines',
  '/v0/env',
  '/v0/metrics',
  '/v0/magicsock',
  '/v0/dnsfwd',
  '/v0/interfaces',
  '/v0/sockstats',
  '/v0/doctor',
]);
/** Bytes of a form body read for Wake-on-LAN's mac parameter. */
const MAX_FORM_BYTES = 64 << 10;

/** An error answer as Go's http.Error writes it: plain text, nosniff, a length, the text and a newline. */
export function sendText(res: ServerResponse, status: number, text: string): void {
  const body = `${text}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** A success answer with a length (tailscaled's bodies are small and sent with one). */
export function sendBody(res: ServerResponse, status: number, body: string, contentType?: string): void {
  res.writeHead(status, {
    ...(contentType && body !== '' ? { 'content-type': contentType } : {}),
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * Browsers get the security headers (no scripts, no framing, no sniffing); Go clients such as tailscaled do not:
 * they send no Accept-Encoding with deflate, no browser User-Agent and no Accept-Language.
 */
export function addSecurityHeaders(req: IncomingMessage, res: ServerResponse): void {
  const enc = String(req.headers['accept-encoding'] ?? '').toLowerCase();
  const ua = String(req.headers['user-agent'] ?? '');
  const browser =
    enc.split(',').some((t) => t.trim().split(';')[0] === 'deflate') ||
    ua.startsWith('Mozilla/') ||
    ua.split(' ').length - 1 > 2 ||
    (req.headers['accept-language'] ?? '') !== '';
  if (!browser) return;
  res.setHeader(
    'content-security-policy',
    "default-src 'none'; frame-ancestors 'none'; script-src 'none'; script-src-elem 'none'; script-src-attr 'none'; style-src 'unsafe-inline'",
  );
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('x-content-type-options', 'nosniff');
}

/** Answers every PeerAPI path except /v0/put/ (Taildrop's). callerIp: the caller's tailnet address. */
export async function servePage(
  req: IncomingMessage,
  res: ServerResponse,
  caller: PageCaller,
  callerIp: string,
): Promise<void> {
  const [path = '', query = ''] = (req.url ?? '').split('?', 2);
  if (DEBUG_PATHS.has(path)) return sendText(res, 403, 'denied; no debug access');
  if (path.startsWith('/v0/drive')) return sendText(res, 404, 'taildrive not enabled');
  if (path === '/v0/ingress') return sendText(res, 403, 'denied; no ingress cap');
  if (path === '/v0/connector/transit-ip') return sendBody(res, 501, '');
  if (path === '/v0/wol') return wakeOnLan(req, res, caller, query);
  if (path !== '/') return sendText(res, 404, 'unsupported peerapi path');
  sendBody(res, 200, greeting(caller, callerIp), 'text/html; charset=utf-8');
}

function greeting(caller: PageCaller, callerIp: string): string {
  const device = caller.name.split('.')[0] ?? caller.name;
  const lines = [
    '<html>',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<body>',
    `<h1>Hello, ${escapeHtml(caller.userName ?? '')} (${escapeHtml(callerIp)})</h1>`,
    `This device runs Trellis on your tailnet. You are calling from ${escapeHtml(device)}.`,
  ];
  if (caller.sameUser) lines.push('<p>This node belongs to you.');
  return `${lines.join('\n')}\n`;
}

/** POST /v0/wol?mac=…: a magic packet for mac on each LAN, as tailscaled does for the same untagged user. */
async function wakeOnLan(req: IncomingMessage, res: ServerResponse, caller: PageCaller, query: string) {
  if (!caller.sameUntaggedUser) return sendText(res, 403, 'no WoL access');
  if (req.method !== 'POST') return sendText(res, 405, 'bad method');
  let mac = new URLSearchParams(query).get('mac') ?? '';
  if (!mac && String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    mac = new URLSearchParams(await readSmallBody(req)).get('mac') ?? '';
  }
  if (!mac) return sendText(res, 400, "missing 'mac' param");
  const bytes = parseMac(mac);
  if (!bytes) return sendText(res, 400, "bad 'mac' param");
  const result = await sendWakeOnLan(bytes);
  sendBody(res, 200, `${JSON.stringify(result)}\n`, 'application/json');
}

/** A MAC address in the forms people write: six pairs of hex digits separated by ':' or '-', or 3 dotted groups. */
export function parseMac(text: string): Uint8Array | undefined {
  const hex = /^([0-9a-f]{2})([:-])(?:[0-9a-f]{2}\2){4}[0-9a-f]{2}$/i.test(text)
    ? text.replace(/[:-]/g, '')
    : /^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/i.test(text)
      ? text.replace(/\./g, '')
      : '';
  return hex ? Uint8Array.from(Buffer.from(hex, 'hex')) : undefined;
}

async function readSmallBody(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (text.length < MAX_FORM_BYTES) text += chunk.toString('latin1');
  }
  return text.slice(0, MAX_FORM_BYTES);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' })[c] ?? c);
}
