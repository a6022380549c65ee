// What tailscaled tells control about the machine besides its OS (Hostinfo.Machine, Distro, DistroVersion,
// DistroCodeName, Userspace, …): control's admin pages and `tailscale whois --json` on a peer show them. Read once;
// a missing or odd /etc/os-release leaves the distro fields out rather than failing.
import { readFileSync } from 'node:fs';
import { machine } from 'node:os';

export interface HostFacts {
  Machine?: string;
  Distro?: string;
  DistroVersion?: string;
  DistroCodeName?: string;
  /** False here; buildHostinfo sets both in userspace networking (the netstack routes, as with tailscaled's). */
  Userspace: boolean;
  UserspaceRouter: boolean;
  /** Trellis offers no app connector, and keeps its state in 0600 files, not an encrypted store (TPM, keychain). */
  AppConnector: false;
  StateEncrypted: false;
}

let cached: HostFacts | undefined;

/** The os-release fields tailscaled reports: ID, VERSION_ID, VERSION_CODENAME (quotes removed, 64 chars at most). */
export function parseOsRelease(text: string): DistroFacts {
  const fields = new Map<string, string>();
  for (const line of text.split('\n').slice(0, 200)) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (!m?.[1]) continue;
    const value = (m[2] ?? '').replace(/^(["'])(.*)\1$/, '$2').slice(0, 64);
    if (/^[\w.+~ -]*$/.test(value)) fields.set(m[1], value);
  }
  const out: DistroFacts = {};
  if (fields.get('ID')) out.Distro = fields.get('ID');
  if (fields.get('VERSION_ID')) out.DistroVersion = fields.get('VERSION_ID');
  if (fields.get('VERSION_CODENAME')) out.DistroCodeName = fields.get('VERSION_CODENAME');
  return out;
}

type DistroFacts = Pick<HostFacts, 'Distro' | 'DistroVersion' | 'DistroCodeName'>;

/** Debian's os-release says "12"; /etc/debian_version says "12.11" (or "trixie/sid" on testing), as tailscaled reports. */
export function withDebianVersion(d: DistroFacts, debianVersion: string): DistroFacts {
  const v = debianVersion.trim().slice(0, 64);
  if (d.Distro !== 'debian' || !/^[\w.+~/-]+$/.test(v)) return d;
  if (/^\d/.test(v)) return { ...d, DistroVersion: v };
  return d.DistroCodeName ? d : { ...d, DistroCodeName: v };
}

export function hostFacts(): HostFacts {
  if (cached) return cached;
  let distro: DistroFacts = {};
  if (process.platform === 'linux') {
    try {
      distro = parseOsRelease(readFileSync('/etc/os-release', 'utf8'));
      distro = withDebianVersion(distro, readFileSync('/etc/debian_version', 'utf8'));
    } catch {}
  }
  let arch: string | undefined;
  try {
    arch = machine();
  } catch {}
  cached = {
    ...(arch ? { Machine: arch } : {}),
    ...distro,
    Userspace: false,
    UserspaceRouter: false,
    AppConnector: false,
    StateEncrypted: false,
  };
  return cached;
}
