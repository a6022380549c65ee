// The small command-line option readers the tailnet verbs share (where the daemon listens: engine/ipc/socket-path.ts).
export { defaultSocketPath, resolveSocketPath } from '../engine/ipc/socket-path.ts';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Removes `--name VALUE` (or `--name=VALUE`) from args and returns VALUE. */
export function takeOption(args: string[], name: string): string | undefined {
  const eq = args.findIndex((a) => a.startsWith(`${name}=`));
  if (eq >= 0) return args.splice(eq, 1)[0].slice(name.length + 1);
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
  args.splice(i, 2);
  return v;
}

/** Removes a boolean `--name` from args and says whether it was there. */
export function takeSwitch(args: string[], name: string): boolean {
  const i = args.indexOf(name);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
}

/** Throws UsageError when args holds anything not taken. */
export function noMoreArgs(args: string[]): void {
  if (args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args[0])}`);
}
