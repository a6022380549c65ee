// What every fuzz target asserts: a parser returns, or throws one of its module's own typed errors, thrown on
// purpose by engine code. Anything else is a finding: a TypeError from an undefined access, a RangeError that
// V8 or node:buffer raised on an out-of-bounds read (same class as a deliberate one, so the origin is checked
// too), a stack overflow, an allocation failure.

type ErrorClass = abstract new (...args: never[]) => Error;

/** True when the error was constructed in engine code (main/engine/…), not in V8, node:* or a dependency. */
function thrownByEngine(err: Error): boolean {
  const frames = (err.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at '));
  const first = frames[0] ?? '';
  return /[/\\]main[/\\]engine[/\\]/.test(first);
}

/** Rethrows `err` unless it is an instance of one of `allowed` created by engine code. */
export function allowOnly(err: unknown, ...allowed: ErrorClass[]): void {
  if (err instanceof Error && allowed.some((c) => err instanceof c) && thrownByEngine(err)) return;
  throw err;
}

/** A finding that is not an exception: a broken invariant of the parser's result. */
export class ContractViolation extends Error {
  override readonly name = 'ContractViolation';
}

export function check(ok: boolean, what: string): void {
  if (!ok) throw new ContractViolation(what);
}

/** Reads the fuzzer's bytes as a stream of small decisions, then the rest as a payload. */
export class Bytes {
  private at = 0;
  constructor(readonly data: Uint8Array) {}
  get left(): number {
    return this.data.length - this.at;
  }
  u8(): number {
    return this.at < this.data.length ? this.data[this.at++] : 0;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  take(n: number): Uint8Array {
    const out = this.data.subarray(this.at, Math.min(this.data.length, this.at + n));
    this.at += out.length;
    return out;
  }
  rest(): Uint8Array {
    return this.take(this.left);
  }
}
