// The window without any engine: renderer/dist served to chromium from memory (playwright routes, no server),
// started with the fake API (?fake=1), and an accessibility scan with axe-core injected into the page.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';

const DIST = fileURLToPath(new URL('../../../renderer/dist/', import.meta.url));
/** A made-up origin the page is served under; nothing listens there, every request is answered by the route. */
export const FAKE_ORIGIN = 'http://trellis.test';

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** Answers every request to FAKE_ORIGIN with the file of renderer/dist it names (404 for anything else). */
export async function serveDist(page: Page): Promise<void> {
  await page.route(`${FAKE_ORIGIN}/**`, async (route) => {
    const rel = decodeURIComponent(new URL(route.request().url()).pathname).replace(/^\/+/, '') || 'index.html';
    const file = path.resolve(DIST, rel);
    if (!file.startsWith(DIST)) return route.fulfill({ status: 404, body: '' });
    try {
      const body = await readFile(file);
      await route.fulfill({ status: 200, body, contentType: TYPES[path.extname(file)] ?? 'application/octet-stream' });
    } catch {
      await route.fulfill({ status: 404, body: '' });
    }
  });
}

/** The window with the fake API; params as fake-api.ts reads them (peers=N, state=…, pending=1, …). */
export async function openFake(page: Page, params: Record<string, string>): Promise<void> {
  const q = new URLSearchParams({ fake: '1', ...params });
  await page.goto(`${FAKE_ORIGIN}/index.html?${q}`);
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

let axeSource: string | undefined;

/** Runs axe-core over the page (WCAG 2.x A and AA rules, contrast included); resolves with the serious and
 *  critical violations. */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  if (!axeSource) {
    const require = createRequire(import.meta.url);
    axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  }
  // Evaluated, not added as a <script>: the page's Content-Security-Policy (script-src 'self') forbids inline ones.
  if (!(await page.evaluate('typeof globalThis.axe === "object"'))) await page.evaluate(axeSource);
  // Page code as a string: tsx's name-keeping helper would not exist in the page.
  const violations = (await page.evaluate(`axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    resultTypes: ['violations'],
  }).then((r) => r.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target, failureSummary: n.failureSummary })),
  })))`)) as AxeViolation[];
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export function describeViolations(vs: readonly AxeViolation[]): string {
  return vs
    .map(
      (v) =>
        `${v.impact} ${v.id}: ${v.help}\n${v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.failureSummary ?? ''}`).join('\n')}`,
    )
    .join('\n');
}
