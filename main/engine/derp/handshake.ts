// The bytes of the DERP handshake (docs/protocol/datapath.md §1.2, §1.4) as pure functions: the HTTP upgrade request, the
// reader of the server's answer head, the ClientInfo JSON and frame, and ServerInfo opening.

import { openFrom, sealTo } from '../crypto/naclbox.ts';
import { DerpError } from './errors.ts';
import { buildClientInfo, PROTOCOL_VERSION } from './frames.ts';

const MAX_HTTP_HEAD = 16 << 10;

export interface DerpServerInfo {
  version: number;
  /** Non-zero: the server asks this client to limit its sends (bytes including framing). */
  tokenBucketBytesPerSecond: number;
  tokenBucketBytesBurst: number;
}

/** GET <path> with Upgrade: DERP. No fast start: we read the 101 and the ServerKey frame. */
export function upgradeRequest(path: string, hostHeader: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n`;
}

/** Collects the server's answer head. push() returns the bytes after it once complete, else null. */
export class UpgradeReader {
  private head: Buffer = Buffer.alloc(0);
  /** Lowercase hex of the Derp-Public-Key header, if the server sent it (checked against ServerKey). */
  serverKeyHex = '';

  /** Throws DerpError('protocol') for anything but an HTTP/1.x 101, or a head over 16 KiB. */
  push(d: Uint8Array): Uint8Array | null {
    this.head = this.head.length ? Buffer.concat([this.head, d]) : Buffer.from(d.buffer, d.byteOffset, d.length);
    const end = this.head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.head.length > MAX_HTTP_HEAD) throw new DerpError('protocol', 'DERP upgrade answer head is too long');
      return null;
    }
    const lines = this.head.subarray(0, end).toString('latin1').split('\r\n');
    const rest = this.head.subarray(end + 4);
    const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
    if (status?.[1] !== '101') {
      const body = rest
        .subarray(0, 200)
        .toString('utf8')
        .replace(/[^\x20-\x7e]+/g, ' ')
        .trim();
      const what = status ? `${status[1]} ${status[2] ?? ''}`.trim() : JSON.stringify((lines[0] ?? '').slice(0, 80));
      throw new DerpError('protocol', `DERP server answered ${what} to the upgrade${body ? `: ${body}` : ''}`);
    }
    for (const line of lines.slice(1)) {
      // tailscale's derpserver sends bare hex; Headscale v0.29.2 sends "nodekey:<hex>"
      const m = /^derp-public-key:\s*(?:nodekey:)?([0-9a-fA-F]{64})\s*$/i.exec(line);
      if (m) this.serverKeyHex = m[1].toLowerCase();
    }
    return rest;
  }
}

export interface ClientInfoOptions {
  meshKey?: string;
  canAckPings?: boolean;
}

/** The ClientInfo plaintext, e.g. {"version":2,"CanAckPings":true} (CanAckPings is always present). */
export function clientInfoJSON(o: ClientInfoOptions = {}): string {
  return JSON.stringify({
    ...(o.meshKey ? { meshKey: o.meshKey.toLowerCase() } : {}),
    version: PROTOCOL_VERSION,
    CanAckPings: o.canAckPings !== false,
  });
}

/** The ClientInfo frame: our public key ‖ nonce ‖ box(JSON) sealed from our private key to the server key. */
export function clientInfoFrame(
  clientPublic: Uint8Array,
  clientPrivate: Uint8Array,
  serverPublic: Uint8Array,
  o: ClientInfoOptions = {},
  nonce?: Uint8Array,
): Uint8Array {
  const sealed = sealTo(new TextEncoder().encode(clientInfoJSON(o)), serverPublic, clientPrivate, nonce);
  return buildClientInfo(clientPublic, sealed);
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);

/** Opens ServerInfo (nonce ‖ box from the server key to us); throws DerpError('protocol') if it will not. */
export function openServerInfo(
  sealed: Uint8Array,
  serverPublic: Uint8Array,
  clientPrivate: Uint8Array,
): DerpServerInfo {
  let plain: Uint8Array;
  try {
    plain = openFrom(sealed, serverPublic, clientPrivate);
  } catch (e) {
    throw new DerpError('protocol', `ServerInfo does not open: ${(e as Error).message}`, { cause: e });
  }
  return parseServerInfo(plain);
}

/** ServerInfo's opened JSON; throws DerpError('protocol') unless it is a JSON object. Separate for the fuzzer. */
export function parseServerInfo(plain: Uint8Array): DerpServerInfo {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(plain));
  } catch (e) {
    throw new DerpError('protocol', `ServerInfo does not open: ${(e as Error).message}`, { cause: e });
  }
  if (typeof json !== 'object' || json === null) throw new DerpError('protocol', 'ServerInfo is not a JSON object');
  const j = json as Record<string, unknown>;
  return {
    version: num(j.version),
    tokenBucketBytesPerSecond: num(j.TokenBucketBytesPerSecond),
    tokenBucketBytesBurst: num(j.TokenBucketBytesBurst),
  };
}
