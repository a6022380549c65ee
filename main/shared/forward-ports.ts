// The forwardPorts pref's text, parsed: "PORT" or "TAILNET_PORT=LOCAL_PORT". Pure and free of Node, so the one
// parser serves the engine (which decides), the CLI (--forward-ports) and the window's Settings card (which checks
// before it sends) alike: what the window accepts is exactly what the engine accepts.

/** At most this many forwards (a pref, not a port scan). */
export const MAX_FORWARDS = 64;

export interface PortForward {
  tailnetPort: number;
  localPort: number;
}

/** A forwardPorts pref that cannot be used; the message has one sentence per bad entry. */
export class ForwardPortsError extends Error {
  override readonly name = 'ForwardPortsError';
  constructor(readonly problems: string[]) {
    super(problems.join(' '));
  }
}

/** A TCP port as typed: 1–65535 in plain digits, else undefined. */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * Checks a forwardPorts pref: entries "PORT" or "TAILNET_PORT=LOCAL_PORT", ports 1–65535, each tailnet port once.
 * Returns the forwards in the order given; throws ForwardPortsError naming every bad entry.
 */
export function parseForwardPorts(entries: readonly unknown[]): PortForward[] {
  const problems: string[] = [];
  const out: PortForward[] = [];
  const seen = new Set<number>();
  if (entries.length > MAX_FORWARDS) problems.push(`At most ${MAX_FORWARDS} ports can be forwarded.`);
  for (const raw of entries.slice(0, MAX_FORWARDS)) {
    const entry = typeof raw === 'string' ? raw.trim() : '';
    const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 40)) : 'a non-text entry';
    const [from = '', to, ...extra] = entry.split('=');
    const tailnetPort = parsePort(from);
    const localPort = to === undefined ? tailnetPort : parsePort(to);
    if (tailnetPort === undefined || localPort === undefined || extra.length > 0) {
      problems.push(`${shown} is not a port forward: give PORT or TAILNET_PORT=LOCAL_PORT, ports from 1 to 65535.`);
      continue;
    }
    if (seen.has(tailnetPort)) {
      problems.push(`Tailnet port ${tailnetPort} is forwarded more than once.`);
      continue;
    }
    seen.add(tailnetPort);
    out.push({ tailnetPort, localPort });
  }
  if (problems.length > 0) throw new ForwardPortsError(problems);
  return out;
}

/** The canonical text of forwards ("8080", "2222=22"), as the pref keeps them. */
export function formatForwardPorts(forwards: readonly PortForward[]): string[] {
  return forwards.map((f) => (f.tailnetPort === f.localPort ? `${f.tailnetPort}` : `${f.tailnetPort}=${f.localPort}`));
}

/**
 * What the window's two fields (tailnet port; local port, empty = the same) add to a list of forwards: the new list
 * in canonical form, or one sentence saying what is wrong, in the window's words rather than the CLI's syntax.
 * Anything the fields pass is then run through parseForwardPorts, so nothing the engine would refuse gets out.
 */
export function addForward(
  current: readonly string[],
  tailnetText: string,
  localText: string,
): { forwardPorts: string[] } | { error: string; field?: 'tailnet' | 'local' } {
  const t = tailnetText.trim();
  const l = localText.trim();
  if (t === '') return { error: 'Give the tailnet port that peers connect to.', field: 'tailnet' };
  const tailnetPort = parsePort(t);
  if (tailnetPort === undefined) {
    return { error: `The tailnet port must be a number from 1 to 65535, not ${short(t)}.`, field: 'tailnet' };
  }
  const localPort = l === '' ? tailnetPort : parsePort(l);
  if (localPort === undefined) {
    return { error: `The local port must be a number from 1 to 65535, not ${short(l)}.`, field: 'local' };
  }
  try {
    const existing = parseForwardPorts(current);
    const same = existing.find((f) => f.tailnetPort === tailnetPort);
    if (same) {
      const error = `Tailnet port ${tailnetPort} is forwarded already (to this computer's ${same.localPort}).`;
      return { error, field: 'tailnet' };
    }
    return { forwardPorts: formatForwardPorts(parseForwardPorts([...current, `${tailnetPort}=${localPort}`])) };
  } catch (e) {
    if (e instanceof ForwardPortsError) return { error: e.message };
    throw e;
  }
}

/** The list without the forward of this tailnet port (entries kept as given). */
export function removeForward(current: readonly string[], tailnetPort: number): string[] {
  return current.filter((entry) => parsePort(entry.trim().split('=')[0] ?? '') !== tailnetPort);
}

function short(text: string): string {
  return JSON.stringify(text.length > 12 ? `${text.slice(0, 12)}…` : text);
}
