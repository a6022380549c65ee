// Human-readable durations and byte counts for CLI output, in the style of `wg show`.
export function formatDuration(seconds: number): string {
  let s = Math.max(0, Math.floor(seconds));
  const parts: string[] = [];
  for (const [unit, size] of [
    ['day', 86400],
    ['hour', 3600],
    ['minute', 60],
  ] as const) {
    if (s >= size) {
      const n = Math.floor(s / size);
      parts.push(`${n} ${unit}${n === 1 ? '' : 's'}`);
      s -= n * size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s} second${s === 1 ? '' : 's'}`);
  return parts.join(', ');
}
