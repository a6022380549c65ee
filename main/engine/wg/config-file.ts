// Parser for wg-quick style configuration files. Pure: text in, typed config out, or a ConfigError that
// names the line and the reason. Host names in Endpoint are kept as text; the caller resolves them.

import { AddressError, parsePrefix } from '../packet/ip.ts';
import type { Prefix } from './allowedips.ts';
import { KeyFormatError, parseKey } from './keys.ts';

export interface InterfaceAddress {
  prefix: Prefix;
  /** As written, e.g. "203.0.113.1/24". */
  text: string;
}

export interface PeerSection {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  allowedIPs: Array<Prefix & { text: string }>;
  endpoint?: { host: string; port: number };
  persistentKeepalive?: number;
  line: number;
}

export interface WgQuickConfig {
  privateKey: Uint8Array;
  addresses: InterfaceAddress[];
  listenPort?: number;
  mtu?: number;
  peers: PeerSection[];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(line > 0 ? `line ${line}: ${reason}` : reason);
  }
}

// Keys wg-quick knows but that Trellis does not act on; accepted so existing files load.
const IGNORED_INTERFACE_KEYS = new Set([
  'dns',
  'table',
  'preup',
  'postup',
  'predown',
  'postdown',
  'saveconfig',
  'fwmark',
]);

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function integer(value: string, line: number, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new ConfigError(line, `${what} must be a number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(line, `${what} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function key(value: string, line: number, what: string): Uint8Array {
  try {
    return parseKey(value);
  } catch (e) {
    if (e instanceof KeyFormatError) throw new ConfigError(line, `${what}: ${e.message}`);
    throw e;
  }
}

function prefix(value: string, line: number, what: string): Prefix {
  try {
    return parsePrefix(value);
  } catch (e) {
    if (e instanceof AddressError) throw new ConfigError(line, `${what}: ${e.message}`);
    throw e;
  }
}

export function parseEndpointText(value: string, line: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:\s]+):(\d+)$/.exec(value);
  if (!m) throw new ConfigError(line, `Endpoint must be host:port or [v6]:port, got ${JSON.stringify(value)}`);
  return { host: m[1], port: integer(m[2], line, 'Endpoint port', 1, 65535) };
}

export function parseWgQuick(text: string): WgQuickConfig {
  let section: 'none' | 'interface' | 'peer' = 'none';
  let sawInterface = false;
  let privateKey: Uint8Array | undefined;
  const addresses: InterfaceAddress[] = [];
  let listenPort: number | undefined;
  let mtu: number | undefined;
  const peers: PeerSection[] = [];
  let peer: Partial<PeerSection> & { line: number; allowedIPs: PeerSection['allowedIPs'] } = {
    line: 0,
    allowedIPs: [],
  };

  const finishPeer = (): void => {
    if (section !== 'peer') return;
    if (!peer.publicKey) throw new ConfigError(peer.line, '[Peer] has no PublicKey');
    peers.push(peer as PeerSection);
  };

  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i].replace(/#.*$/, '').trim();
    if (raw === '') continue;
    const header = /^\[(\w+)\]$/.exec(raw);
    if (header) {
      finishPeer();
      const name = header[1].toLowerCase();
      if (name === 'interface') {
        if (sawInterface) throw new ConfigError(n, 'more than one [Interface] section');
        section = 'interface';
        sawInterface = true;
      } else if (name === 'peer') {
        section = 'peer';
        peer = { line: n, allowedIPs: [] };
      } else {
        throw new ConfigError(n, `unknown section [${header[1]}]`);
      }
      continue;
    }
    const eq = raw.indexOf('=');
    if (eq <= 0) throw new ConfigError(n, `expected "Key = Value", got ${JSON.stringify(raw)}`);
    const k = raw.slice(0, eq).trim().toLowerCase();
    const v = raw.slice(eq + 1).trim();
    if (section === 'none') throw new ConfigError(n, 'setting outside of [Interface] or [Peer]');
    if (section === 'interface') {
      if (k === 'privatekey') privateKey = key(v, n, 'PrivateKey');
      else if (k === 'address')
        for (const a of splitList(v)) addresses.push({ prefix: prefix(a, n, 'Address'), text: a });
      else if (k === 'listenport') listenPort = integer(v, n, 'ListenPort', 0, 65535);
      else if (k === 'mtu') mtu = integer(v, n, 'MTU', 576, 65535);
      else if (!IGNORED_INTERFACE_KEYS.has(k))
        throw new ConfigError(n, `unknown [Interface] key ${JSON.stringify(raw.slice(0, eq).trim())}`);
    } else {
      if (k === 'publickey') peer.publicKey = key(v, n, 'PublicKey');
      else if (k === 'presharedkey') peer.presharedKey = key(v, n, 'PresharedKey');
      else if (k === 'allowedips')
        for (const a of splitList(v)) peer.allowedIPs.push({ ...prefix(a, n, 'AllowedIPs'), text: a });
      else if (k === 'endpoint') peer.endpoint = parseEndpointText(v, n);
      else if (k === 'persistentkeepalive')
        peer.persistentKeepalive = v === 'off' ? 0 : integer(v, n, 'PersistentKeepalive', 0, 65535);
      else throw new ConfigError(n, `unknown [Peer] key ${JSON.stringify(raw.slice(0, eq).trim())}`);
    }
  }
  finishPeer();
  if (!sawInterface) throw new ConfigError(0, 'no [Interface] section');
  if (!privateKey) throw new ConfigError(0, '[Interface] has no PrivateKey');
  const seen = new Set<string>();
  for (const p of peers) {
    const b64 = Buffer.from(p.publicKey).toString('base64');
    if (seen.has(b64)) throw new ConfigError(p.line, 'the same PublicKey appears in two [Peer] sections');
    seen.add(b64);
  }
  return { privateKey, addresses, listenPort, mtu, peers };
}
