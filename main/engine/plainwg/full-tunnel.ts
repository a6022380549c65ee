// A full tunnel (AllowedIPs 0.0.0.0/0 or ::/0) the wg-quick way on Linux: the default route goes into a table of its
// own (51820, or the next one with no routes), the tunnel's UDP socket carries that number as its fwmark, and two
// policy rules per family send everything unmarked to that table while `suppress_prefixlength 0` lets the main
// table's more specific routes (the LAN) win. The rules, the table's routes and src_valid_mark are put back as they
// were when the tunnel goes down.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const FIRST_TABLE = 51820;
const SRC_VALID_MARK = '/proc/sys/net/ipv4/conf/all/src_valid_mark';

export class FullTunnelError extends Error {
  override readonly name = 'FullTunnelError';
}

async function ip(args: string[]): Promise<string> {
  try {
    return (await run('ip', args, { timeout: 10_000 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new FullTunnelError(`ip ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

/** The ip(8) commands that set up a full tunnel for these families (what teardown() undoes, in reverse). */
export function fullTunnelCommands(ifname: string, table: number, families: Array<4 | 6>): string[][] {
  const t = String(table);
  return families.flatMap((f) => [
    [`-${f}`, 'route', 'add', f === 4 ? '0.0.0.0/0' : '::/0', 'dev', ifname, 'table', t],
    [`-${f}`, 'rule', 'add', 'not', 'fwmark', t, 'table', t],
    [`-${f}`, 'rule', 'add', 'table', 'main', 'suppress_prefixlength', '0'],
  ]);
}

/** The first table from 51820 on with no routes in either family (wg-quick's choice). */
async function freeTable(): Promise<number> {
  for (let t = FIRST_TABLE; t < FIRST_TABLE + 1000; t++) {
    const v4 = await ip(['-4', 'route', 'show', 'table', String(t)]).catch(() => '');
    const v6 = await ip(['-6', 'route', 'show', 'table', String(t)]).catch(() => '');
    if (!v4.trim() && !v6.trim()) return t;
  }
  throw new FullTunnelError('no free routing table from 51820 on');
}

export class FullTunnel {
  private done = false;

  private constructor(
    readonly table: number,
    private readonly applied: string[][],
    private readonly srcValidMark: string | undefined,
  ) {}

  /**
   * Installs the table, rules and mark for a full tunnel on ifname. setMark marks the tunnel's own UDP socket with
   * the table's number before any rule exists, so its datagrams never loop into the tunnel.
   */
  static async up(ifname: string, families: Array<4 | 6>, setMark: (mark: number) => void): Promise<FullTunnel> {
    if (process.platform !== 'linux')
      throw new FullTunnelError(`a full tunnel is not supported on ${process.platform} yet`);
    const table = await freeTable();
    try {
      setMark(table);
    } catch (e) {
      throw new FullTunnelError(`cannot mark the tunnel's UDP socket: ${(e as Error).message}`);
    }
    let srcValidMark: string | undefined;
    if (families.includes(4)) {
      // rp_filter judges a marked packet's source by the marked route only with src_valid_mark (as wg-quick sets).
      srcValidMark = (await readFile(SRC_VALID_MARK, 'utf8').catch(() => '')).trim() || undefined;
      if (srcValidMark !== undefined && srcValidMark !== '1') await writeFile(SRC_VALID_MARK, '1');
    }
    const tunnel = new FullTunnel(table, [], srcValidMark);
    try {
      for (const cmd of fullTunnelCommands(ifname, table, families)) {
        await ip(cmd);
        tunnel.applied.push(cmd);
      }
    } catch (e) {
      await tunnel.down();
      throw e;
    }
    return tunnel;
  }

  /** Removes what up() added (rules first), puts src_valid_mark back; idempotent, never throws. */
  async down(): Promise<void> {
    if (this.done) return;
    this.done = true;
    for (const cmd of [...this.applied].reverse()) {
      const del = cmd.map((w) => (w === 'add' ? 'del' : w));
      await ip(del).catch(() => {}); // a route goes with its interface anyway
    }
    if (this.srcValidMark !== undefined && this.srcValidMark !== '1') {
      await writeFile(SRC_VALID_MARK, this.srcValidMark).catch(() => {});
    }
  }
}
