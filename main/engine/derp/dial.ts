// Getting a byte stream to a DERP server (docs/protocol/datapath.md §1.1): where to dial (a URL, or a DERP-map node with its
// IPv4/IPv6/DNS rules), TCP with IPv4 and IPv6 raced, then TLS with SNI = HostName, verified against the CA
// roots, against CertName, pinned by "sha256-raw:<hex>", or not at all (InsecureForTests). No ALPN is offered:
// the DERP upgrade is HTTP/1.1 only.
import { createHash } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { bypassConnect } from '../routes/bypass-socket.ts';
import { DerpError } from './errors.ts';

/** The DERP-map fields of a node that matter for dialing (tailcfg.DERPNode). */
export interface DerpNode {
  HostName: string;
  /** '' or absent: resolve HostName over DNS; an IPv4 literal: dial it; anything else ("none"): no IPv4. */
  IPv4?: string;
  IPv6?: string;
  /** 0 or absent: 443 with TLS, 80 without. */
  DERPPort?: number;
  /** The certificate name to expect instead of HostName, or "sha256-raw:<hex>" to pin the leaf's DER. */
  CertName?: string;
  /** Skip certificate verification entirely (labs only). */
  InsecureForTests?: boolean;
}

export interface DerpTarget {
  tls: boolean;
  port: number;
  /** Request path, "/derp" unless a URL names another. */
  path: string;
  /** The Host header: host[:port] when the port is not the scheme's default. */
  hostHeader: string;
  /** The name the certificate must carry (HostName or CertName). */
  tlsName: string;
  certPin?: string; // lowercase hex of sha256(leaf DER)
  insecure: boolean;
  addrs: Array<{ host: string; family: 0 | 4 | 6 }>;
}

const bracket = (h: string): string => (isIP(h) === 6 ? `[${h}]` : h);

export function resolveTarget(o: { url?: string; node?: DerpNode; useTLS?: boolean }): DerpTarget {
  if (o.url !== undefined) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new TypeError(`not a DERP URL: ${o.url}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`DERP URL must be http(s): ${o.url}`);
    const tls = u.protocol === 'https:';
    if (o.useTLS !== undefined && o.useTLS !== tls) throw new TypeError(`useTLS=${o.useTLS} contradicts ${o.url}`);
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    return {
      tls,
      port: Number(u.port) || (tls ? 443 : 80),
      path: u.pathname === '/' || u.pathname === '' ? '/derp' : u.pathname,
      hostHeader: u.host,
      tlsName: host,
      insecure: false,
      addrs: [{ host, family: 0 }],
    };
  }
  const n = o.node;
  if (!n) throw new TypeError('DerpClient.connect needs a url or a node');
  const tls = o.useTLS ?? true;
  const port = n.DERPPort && n.DERPPort > 0 ? n.DERPPort : tls ? 443 : 80;
  const addrs: DerpTarget['addrs'] = [];
  for (const family of [4, 6] as const) {
    const lit = (family === 4 ? n.IPv4 : n.IPv6) ?? '';
    if (lit === '') {
      // resolve HostName for this family; an IP-literal HostName only belongs to its own family
      const hostFamily = isIP(n.HostName);
      if (n.HostName && (hostFamily === 0 || hostFamily === family)) addrs.push({ host: n.HostName, family });
    } else if (isIP(lit) === family) addrs.push({ host: lit, family });
  }
  if (addrs.length === 0) {
    throw new DerpError('unreachable', `DERP node ${n.HostName || '(no HostName)'} has no address to dial`);
  }
  const pin = /^sha256-raw:([0-9a-fA-F]{64})$/.exec(n.CertName ?? '')?.[1];
  return {
    tls,
    port,
    path: '/derp',
    hostHeader: port === (tls ? 443 : 80) ? bracket(n.HostName) : `${bracket(n.HostName)}:${port}`,
    tlsName: pin ? n.HostName : n.CertName || n.HostName,
    certPin: pin?.toLowerCase(),
    insecure: n.InsecureForTests === true,
    addrs,
  };
}

/** Rejects with DerpError('timeout') when signal aborts, after running cleanup. */
function onAbort(signal: AbortSignal, what: string, cleanup: () => void, reject: (e: Error) => void): () => void {
  const abort = () => {
    cleanup();
    reject(new DerpError('timeout', `DERP connect timed out ${what}`));
  };
  if (signal.aborted) queueMicrotask(abort);
  else signal.addEventListener('abort', abort, { once: true });
  return () => signal.removeEventListener('abort', abort);
}

/** TCP to the first address that answers; the others are abandoned. */
export function dialTCP(t: DerpTarget, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sockets: Socket[] = [];
    const errors: string[] = [];
    let done = false;
    const destroyAll = () => {
      for (const s of sockets) s.destroy();
    };
    const off = onAbort(signal, `dialing ${t.hostHeader}`, destroyAll, (e) => {
      if (!done) {
        done = true;
        reject(e);
      }
    });
    for (const a of t.addrs) {
      const s = bypassConnect({ host: a.host, port: t.port, family: a.family }); // off the tunnel's routes
      sockets.push(s);
      s.once('connect', () => {
        if (done) return void s.destroy();
        done = true;
        off();
        for (const other of sockets) if (other !== s) other.destroy();
        s.removeAllListeners('error');
        s.on('error', () => {}); // the caller watches 'close'; an unheard 'error' must not crash the process
        resolve(s);
      });
      s.on('error', (e) => {
        s.destroy();
        errors.push(`${a.host}:${t.port}${a.family ? ` (IPv${a.family})` : ''}: ${e.message}`);
        if (!done && errors.length === t.addrs.length) {
          done = true;
          off();
          reject(new DerpError('unreachable', `cannot reach DERP server: ${errors.join('; ')}`, { cause: e }));
        }
      });
    }
  });
}

const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME|ALTNAME|ISSUER|SIGNATURE|CHAIN/i;

/** TLS over an open TCP socket, verified as the target says. */
export function startTLS(sock: Socket, t: DerpTarget, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const verify = !t.insecure && !t.certPin;
    const s = tlsConnect({
      socket: sock,
      host: t.tlsName,
      ...(isIP(t.tlsName) ? {} : { servername: t.tlsName }),
      rejectUnauthorized: verify,
      checkServerIdentity: verify
        ? (_host: string, cert: PeerCertificate) => checkServerIdentity(t.tlsName, cert)
        : () => undefined,
    });
    const off = onAbort(signal, `in the TLS handshake with ${t.hostHeader}`, () => s.destroy(), reject);
    s.once('secureConnect', () => {
      off();
      s.removeAllListeners('error');
      s.on('error', () => {});
      if (t.certPin) {
        const raw = s.getPeerCertificate(false)?.raw;
        const got = raw ? createHash('sha256').update(raw).digest('hex') : '(no certificate)';
        if (got !== t.certPin) {
          s.destroy();
          return reject(new DerpError('protocol', `DERP server certificate sha256 ${got} does not match the pin`));
        }
      }
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      off();
      s.destroy();
      const kind = CERT_ERROR.test(`${e.code ?? ''} ${e.message}`) ? 'protocol' : 'unreachable';
      reject(new DerpError(kind, `TLS with DERP server ${t.hostHeader} failed: ${e.message}`, { cause: e }));
    });
  });
}
