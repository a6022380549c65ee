// Polls a condition for the native-socket tests (the addon calls back on its own schedule): resolves once it
// holds, fails with what was awaited after `ms`.
export async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
