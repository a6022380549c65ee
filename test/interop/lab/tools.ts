// Preconditions of the namespace lab. Under CI (CI=true) a missing precondition fails the test; on a developer
// machine the test is skipped with a loud message, so a green local run is never mistaken for coverage.
import { accessSync, constants } from 'node:fs';
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
