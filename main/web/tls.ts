// `trellis web` off loopback: the certificate and key it serves HTTPS with, and the host names the certificate
// vouches for, which become the only Host headers the server accepts.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';

export interface TlsFiles {
  certPath: string;
  keyPath: string;
}

export interface TlsMaterial {
  /** PEM, as node:https takes it. */
  cert: Buffer;
  key: Buffer;
  /** The certificate's subjectAltName DNS names (lower case, wildcards kept) and IP addresses. */
  names: string[];
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost: only this machine can reach a server bound there. */
export function isLoopbackHost(host: string): boolean {
  const h = canonicalHost(host);
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  // ::ffff:127.x.y.z, which the canonical form spells ::ffff:7fxx:yyzz.
  return isIP(h) === 6 && /^::ffff:7f[0-9a-f]{2}:/.test(h);
}

/** The DNS and IP entries of a certificate's subjectAltName (the common name is ignored, as browsers do). */
export function certificateNames(cert: X509Certificate): string[] {
  const names: string[] = [];
  // Node renders the extension as "DNS:a.example, IP Address:192.0.2.1, ..."; values may be quoted when odd.
  for (const entry of (cert.subjectAltName ?? '').split(/,\s*/)) {
    const m = /^(DNS|IP Address):"?([^"]*)"?$/.exec(entry.trim());
    if (!m) continue;
    const value = canonicalHost(m[2]);
    if (m[1] === 'IP Address' && isIP(value) === 0) continue;
    if (value !== '' && !names.includes(value)) names.push(value);
  }
  return names;
}

/** A host name or address in one spelling: lower case, IPv6 without brackets and in its shortest form. */
export function canonicalHost(host: string): string {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  // OpenSSL prints IPv6 SANs uncompressed (0:0:0:0:0:0:0:1); a Host header says [::1].
  return isIP(h) === 6 ? new URL(`http://[${h}]/`).hostname.slice(1, -1) : h;
}

/** Whether a host (a Host header's name, port removed) is one of the certificate's names. */
export function certificateCovers(names: readonly string[], host: string): boolean {
  const h = canonicalHost(host);
  return names.some((n) => {
    if (n === h) return true;
    // A wildcard stands for exactly one leftmost label, never an IP address.
    if (!n.startsWith('*.') || isIP(h) !== 0) return false;
    const dot = h.indexOf('.');
    return dot > 0 && h.slice(dot + 1) === n.slice(2);
  });
}

/** Reads and checks the pair; each problem is thrown as one sentence naming the file at fault. */
export async function loadTls(files: TlsFiles): Promise<TlsMaterial> {
  const read = async (path: string, flag: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (e) {
      throw new Error(`cannot read ${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const cert = await read(files.certPath, '--tls-cert');
  const key = await read(files.keyPath, '--tls-key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new Error(`--tls-cert ${files.certPath} is not a PEM certificate`);
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new Error(`--tls-key ${files.keyPath} is not a PEM private key (or it is encrypted)`);
  }
  if (!matches) throw new Error(`--tls-key ${files.keyPath} is not the key of the certificate in ${files.certPath}`);
  const names = certificateNames(x509);
  if (names.length === 0) {
    throw new Error(
      `--tls-cert ${files.certPath} names no host (no DNS or IP subjectAltName), so no browser would accept it`,
    );
  }
  return { cert, key, names };
}
