// Waiting for something that should finish soon, without hanging on it when it does not.

/** 'done' when p settles (either way) within ms, else 'late'; the timer never holds the process open. */
export async function within(p: Promise<unknown>, ms: number): Promise<'done' | 'late'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
    timer.unref?.();
  });
  const done = p.then(
    () => 'done' as const,
    () => 'done' as const,
  );
  return Promise.race([done, late]).finally(() => clearTimeout(timer));
}
