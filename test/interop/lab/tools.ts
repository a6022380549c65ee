// Preconditions of the namespace lab. Under CI (CI=true) a missing precondition fails the test; on a developer
// machine the test is skipped with a loud message, so a green local run is never mistaken for coverage.
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

/** Absolute path of an executable found on PATH, or null. */
export function which(name: string): string | null {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const dir of dirs) {
    const full = path.join(dir, name);
    try {
      accessSync(full, constants.X_OK);
      return full;
    } catch {}
  }
  return null;
}

let goBinDirsCache: string[] | null = null;

/** Where `go install` puts binaries: $GOBIN, $(go env GOPATH)/bin, ~/go/bin, /root/go/bin. */
function goBinDirs(): string[] {
  if (goBinDirsCache) return goBinDirsCache;
  const dirs = process.env.GOBIN ? [process.env.GOBIN] : [];
  for (const go of [which('go'), '/usr/local/go/bin/go']) {
    try {
      if (!go) continue;
      const gopath = execFileSync(go, ['env', 'GOPATH'], { encoding: 'utf8', timeout: 5_000 }).trim();
      dirs.push(...gopath.split(path.delimiter).map((p) => path.join(p, 'bin')));
      break;
    } catch {}
  }
  goBinDirsCache = [...dirs, path.join(homedir(), 'go', 'bin'), '/root/go/bin'];
  return goBinDirsCache;
}

/**
 * Absolute path of a Go-installed tool (PATH first, then the Go bin directories), or null. When found
 * outside PATH, its directory is appended to PATH so requireTools() and child processes find it too.
 */
export function goBinary(name: string): string | null {
  const onPath = which(name);
  if (onPath) return onPath;
  for (const dir of goBinDirs()) {
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      process.env.PATH = `${process.env.PATH ?? ''}${path.delimiter}${dir}`;
      return path.join(dir, name);
    } catch {}
  }
  return null;
}

/** What is missing for the lab: 'root' and/or tool names ('/dev/net/tun' when wireguard-go needs it). */
export function missingPrerequisites(names: string[]): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const n of names) if (!which(n)) missing.push(n);
  if (names.includes('wireguard-go')) {
    try {
      accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    } catch {
      missing.push('/dev/net/tun');
    }
  }
  return missing;
}

/**
 * Returns true when every tool is on PATH and we are root. Otherwise: under CI throws (the test fails);
 * elsewhere skips the test, prints a loud notice and returns false (the caller should return).
 */
export function requireTools(t: TestContext, names: string[]): boolean {
  const missing = missingPrerequisites(names);
  if (missing.length === 0) return true;
  const msg = `lab prerequisites missing: ${missing.join(', ')} (run test/setup/prereqs.sh as root)`;
  if (process.env.CI === 'true') throw new Error(`${msg}; under CI this is a failure, not a skip`);
  console.error(`\n!!!!! SKIPPING "${t.name}": ${msg} !!!!!\n`);
  t.skip(msg);
  return false;
}
