// The other Node the engine must run on (Electron's: Electron 45 ships Node 24), as test/setup/prereqs.sh installs
// it from test/setup/engine-node-versions.txt, and the app's bundle laid out as a package would hold it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PINS = path.join(ROOT, 'test/setup/engine-node-versions.txt');

export interface EngineNode {
  version: string;
  /** /opt/trellis-test/node-VERSION/bin/node */
  bin: string;
}

/** The pinned versions (package, version, integrity per line; # comments). */
export function pinnedNodes(): EngineNode[] {
  const out: EngineNode[] = [];
  for (const line of readFileSync(PINS, 'utf8').split('\n')) {
    const [pkg, version] = line.trim().split(/\s+/);
    if (!pkg || pkg.startsWith('#') || !version) continue;
    out.push({ version, bin: `/opt/trellis-test/node-${version}/bin/node` });
  }
  return out;
}

/**
 * The pinned Node of this major, checked to run and to be that version. Missing: under CI=true the test fails (a
 * green CI must not hide an untested Electron Node); elsewhere it is skipped loudly and null returned.
 */
export function requireEngineNode(t: TestContext, major: number): EngineNode | null {
  const pin = pinnedNodes().find((n) => n.version.startsWith(`${major}.`));
  let why = pin ? '' : `no Node ${major} pinned in ${PINS}`;
  if (pin && !existsSync(pin.bin)) why = `${pin.bin} is missing (run test/setup/prereqs.sh as root)`;
  if (pin && !why) {
    const v = execFileSync(pin.bin, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
    if (v !== `v${pin.version}`) why = `${pin.bin} says ${v}, not v${pin.version}`;
  }
  if (!why && pin) return pin;
  if (process.env.CI === 'true') throw new Error(`${why}; under CI this is a failure, not a skip`);
  console.error(`\n!!!!! SKIPPING "${t.name}": ${why} !!!!!\n`);
  t.skip(why);
  return null;
}

/** The node_modules packages electron-builder.yml ships (its `files:` entries `node_modules/NAME/**`). */
export async function shippedPackages(): Promise<string[]> {
  const yml = await readFile(path.join(ROOT, 'build/electron-builder.yml'), 'utf8');
  const out: string[] = [];
  let section = '';
  for (const line of yml.split('\n')) {
    const key = /^([A-Za-z]\w*):/.exec(line);
    if (key) section = key[1] ?? '';
    const pkg = /^\s+-\s+node_modules\/([^/*!]+)\/\*\*\s*$/.exec(line);
    if (section === 'files' && pkg?.[1]) out.push(pkg[1]);
  }
  return out;
}

/**
 * `build/build-main.mjs --out <app>/dist --cli` into a fresh temp dir, with the addon at <app>/native/build/Release
 * and copies (not links: Node resolves a link's dependencies from its real place) of only the packages
 * electron-builder ships in <app>/node_modules: the layout of app.asar.unpacked. Returns <app>.
 */
export async function buildAppBundle(): Promise<{ app: string; trellisJs: string; log: string }> {
  const app = await mkdtemp(path.join(tmpdir(), 'trellis-bundle-'));
  const log = execFileSync(
    process.execPath,
    [path.join(ROOT, 'build/build-main.mjs'), '--out', `${app}/dist`, '--cli'],
    {
      encoding: 'utf8',
      timeout: 120_000,
      cwd: ROOT,
    },
  );
  const addon = 'native/build/Release/trellis_tun.node';
  await mkdir(path.join(app, path.dirname(addon)), { recursive: true });
  await cp(path.join(ROOT, addon), path.join(app, addon));
  for (const pkg of await shippedPackages()) {
    await cp(path.join(ROOT, 'node_modules', pkg), path.join(app, 'node_modules', pkg), { recursive: true });
  }
  return { app, trellisJs: path.join(app, 'dist/electron/trellis.js'), log };
}
