// The Trellis window as the end-to-end test drives it: `trellis web` started against a daemon, Debian's chromium
// driven by playwright-core, and a page object that speaks in the user's terms (log in, search, drop a file).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { tempIsolatedEnv } from '../../isolated-env.ts';
import { ManagedProcess, runCommand } from './proc.ts';
import { TRELLIS_BIN } from './trellis.ts';

export const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'app-web');

/** Builds renderer/dist with Vite unless it is newer than every renderer source (the renderer's own, and what it
 *  imports from preload/ and main/shared/). */
export async function buildRenderer(): Promise<void> {
  const out = path.join(ROOT, 'renderer', 'dist', 'index.html');
  const newest = Math.max(
    ...['renderer', 'preload', path.join('main', 'shared')].map((d) => newestSource(path.join(ROOT, d))),
  );
  if (existsSync(out) && statSync(out).mtimeMs > newest) return;
  const vite = path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  const config = path.join(ROOT, 'renderer', 'vite.config.ts');
  const r = await runCommand(process.execPath, [vite, 'build', '--config', config], { timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`vite build of the renderer failed:\n${r.stderr}\n${r.stdout}`);
}

function newestSource(dir: string): number {
  let newest = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      if (name === 'dist' || name === 'node_modules') continue;
      const p = path.join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else newest = Math.max(newest, st.mtimeMs);
    }
  };
  walk(dir);
  return newest;
}

export interface WebUi {
  url: string;
  /** The folder trellis web saves received files to: Downloads in its own temporary home. */
  saveDir: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

const URL_LINE = /Trellis web UI: (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/;

/** `trellis web --port 0 --socket <socket>` in the root namespace (the daemon's socket is a file, reachable from
 *  any namespace), with a temporary home so no preference of the real user's applies; resolves with the URL it
 *  prints. */
export async function startWebUi(socket: string): Promise<WebUi> {
  const home = tempIsolatedEnv('trellis-web-home-');
  const proc = new ManagedProcess(process.execPath, [TRELLIS_BIN, 'web', '--port', '0', '--socket', socket], {
    label: 'trellis web',
    env: home.env,
  });
  const stop = async () => {
    await proc.stop();
    home.remove();
  };
  if (!(await proc.waitForOutput(URL_LINE, 20_000))) {
    await stop();
    throw new Error(`trellis web printed no URL:\n${proc.output()}`);
  }
  const url = URL_LINE.exec(proc.output())?.[1] as string;
  return { url, saveDir: home.env.XDG_DOWNLOAD_DIR, process: proc, stop };
}

/** Debian's chromium, headless; executablePath may be a wrapper that starts it elsewhere (in a namespace). */
export async function launchChromium(executablePath = CHROMIUM): Promise<Browser> {
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 60_000,
  });
}

/** `trellis web` on the daemon at socket and a chromium page for it, both closed after the test; the page's errors
 *  become the test's diagnostics. */
export async function openWindowOn(
  t: { after: (fn: () => Promise<void>) => void; diagnostic: (m: string) => void },
  socket: string,
): Promise<{ web: WebUi; page: Page; app: AppPage }> {
  const web = await startWebUi(socket);
  t.after(() => web.stop());
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  page.on('console', (m) => {
    if (m.type() === 'error') t.diagnostic(`[page] ${m.text()}`);
  });
  return { web, page, app: new AppPage(page) };
}

/** The window, in the user's terms. */
export class AppPage {
  constructor(readonly page: Page) {}

  get state(): Locator {
    return this.page.getByTestId('connection-state');
  }

  async waitForState(state: string, timeoutMs = 60_000): Promise<void> {
    await this.page.locator(`[data-testid="connection-state"][data-state="${state}"]`).waitFor({ timeout: timeoutMs });
  }

  async logIn(controlURL: string, authKey: string): Promise<void> {
    await this.page.getByTestId('login-view').waitFor({ timeout: 30_000 });
    await this.page.getByTestId('control-custom').check();
    await this.page.getByTestId('control-url').fill(controlURL);
    await this.page.getByTestId('auth-key').fill(authKey);
    await this.page.getByTestId('login-submit').click();
  }

  peerRows(): Locator {
    return this.page.getByTestId('peer-row');
  }

  peerRow(name: string): Locator {
    return this.page.locator(`[data-testid="peer-row"][data-peer="${name}"]`);
  }

  async search(text: string): Promise<void> {
    await this.page.getByTestId('peer-search').fill(text);
  }

  /** Opens the exit node picker above the device list and chooses a device by name (or 'None'). */
  async chooseExitNode(name: string): Promise<void> {
    const picker = this.page.getByTestId('exit-node-picker');
    if (!(await picker.isVisible())) await this.page.getByTestId('exit-node-choose').click();
    const option =
      name === 'None'
        ? this.page.getByTestId('exit-none')
        : this.page.locator(`[data-testid="exit-option"][data-peer="${name}"]`);
    await option.click({ timeout: 10_000 });
    await picker.waitFor({ state: 'detached', timeout: 10_000 });
  }

  /** Waits until the exit node line says state ('none', 'active' or 'held') and, unless none, names this device. */
  async waitForExitNode(state: 'none' | 'active' | 'held', name = '', timeoutMs = 30_000): Promise<void> {
    await this.page
      .locator(`[data-testid="exit-node-current"][data-state="${state}"][data-name="${name}"]`)
      .waitFor({ timeout: timeoutMs });
  }

  async toggleConnection(): Promise<void> {
    await this.page.getByTestId('connect-toggle').click();
  }

  /** Drops a file with these bytes on target, as a user dragging it from their file manager would. */
  async dropFile(target: Locator, name: string, bytes: Buffer): Promise<void> {
    const dataTransfer = await this.page.evaluateHandle(
      ({ name, b64 }) => {
        const bin = atob(b64);
        const u8 = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
        // In the page; the root tsconfig has no DOM types, so the few browser globals are typed here.
        const w = globalThis as unknown as {
          DataTransfer: new () => { items: { add(f: unknown): void } };
          File: new (parts: Uint8Array[], name: string, o: { type: string }) => unknown;
        };
        const dt = new w.DataTransfer();
        dt.items.add(new w.File([u8], name, { type: 'application/octet-stream' }));
        return dt;
      },
      { name, b64: bytes.toString('base64') },
    );
    await target.dispatchEvent('dragenter', { dataTransfer });
    await target.dispatchEvent('dragover', { dataTransfer });
    await target.dispatchEvent('drop', { dataTransfer });
  }

  /** Records every value the transfer progress bars show from now on (a MutationObserver in the page). Page code
   *  goes as a string: tsx's name-keeping helper (__name) would not exist in the page. */
  async recordProgress(): Promise<() => Promise<{ now: number; max: number }[]>> {
    await this.page.evaluate(`(() => {
      const seen = [];
      globalThis.__progress = seen;
      const grab = () => {
        for (const el of document.querySelectorAll('[data-testid="transfer-progress"]')) {
          const now = Number(el.getAttribute('aria-valuenow'));
          const max = Number(el.getAttribute('aria-valuemax'));
          const last = seen[seen.length - 1];
          if (!last || last.now !== now || last.max !== max) seen.push({ now, max });
        }
      };
      new MutationObserver(grab).observe(document.body, { subtree: true, childList: true, attributes: true });
      grab();
    })()`);
    return () => this.page.evaluate('globalThis.__progress') as Promise<{ now: number; max: number }[]>;
  }

  /** Records which of these test ids first appear in the page from now on, in the order they appear; resolves
   *  with that order (a MutationObserver, so an element that comes and goes between two polls is still seen). */
  async recordFirstSeen(testIds: readonly string[]): Promise<() => Promise<string[]>> {
    await this.page.evaluate(`(() => {
      const ids = ${JSON.stringify(testIds)};
      const seen = [];
      globalThis.__firstSeen = seen;
      const grab = () => {
        for (const id of ids) {
          if (!seen.includes(id) && document.querySelector('[data-testid="' + id + '"]')) seen.push(id);
        }
      };
      new MutationObserver(grab).observe(document.body, { subtree: true, childList: true });
      grab();
    })()`);
    return () => this.page.evaluate('globalThis.__firstSeen') as Promise<string[]>;
  }

  async screenshot(name: string): Promise<string> {
    await mkdir(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `${name}.png`);
    await this.page.screenshot({ path: file, fullPage: true });
    return file;
  }
}
