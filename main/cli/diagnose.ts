// `trellis ping <peer>` (disco ping: which path, which endpoint, how fast — like `tailscale ping`) and
// `trellis netcheck` (UDP, public endpoint, home DERP latency), answered by the running daemon.

import { connectDaemon } from '../engine/ipc/daemon-client.ts';
import { EngineError } from '../engine/protocol.ts';
import { noMoreArgs, resolveSocketPath, takeOption, takeSwitch, UsageError } from './paths.ts';

export const DIAGNOSE_USAGE = {
  ping: 'trellis ping <peer name or IP> [--count N] [--timeout SECONDS] [--socket PATH]',
  netcheck: 'trellis netcheck [--json] [--socket PATH]',
} as const;

export async function runDiagnose(verb: 'ping' | 'netcheck', args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`usage: ${DIAGNOSE_USAGE[verb]}\n`);
    return 0;
  }
  try {
    const socket = resolveSocketPath(takeOption(args, '--socket'));
    return verb === 'ping' ? await ping(socket, args) : await netcheck(socket, args);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`trellis ${verb}: ${e.message}\nusage: ${DIAGNOSE_USAGE[verb]}\n`);
      return 2;
    }
    process.stderr.write(`trellis ${verb}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

async function ping(socket: string, args: string[]): Promise<number> {
  const count = Number(takeOption(args, '--count') ?? '5');
  const timeoutS = Number(takeOption(args, '--timeout') ?? '5');
  const [target, ...extra] = args;
  args.length = 0;
  if (!target || extra.length > 0) throw new UsageError('give one peer name or IP');
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw new UsageError('--count must be 1-1000');
  if (!(timeoutS > 0 && timeoutS <= 30)) throw new UsageError('--timeout must be 0-30 seconds');
  const client = await connectDaemon(socket);
  try {
    let direct = false;
    for (let i = 0; i < count && !direct; i++) {
      try {
        const r = await client.request(
          'ping',
          { target, timeoutMs: timeoutS * 1000 },
          { timeoutMs: timeoutS * 1000 + 5000 },
        );
        const via = r.via === 'direct' ? r.endpoint : `DERP(${r.derpRegion})`;
        process.stdout.write(`pong from ${r.peer} (${r.address}) via ${via} in ${r.latencyMs} ms\n`);
        direct = r.via === 'direct'; // like tailscale ping: stop once a direct path answers
      } catch (e) {
        if (!(e instanceof EngineError) || e.code !== 'timeout') throw e;
        process.stdout.write(`${e.message}\n`);
      }
    }
    return direct ? 0 : 1;
  } finally {
    client.close();
  }
}

async function netcheck(socket: string, args: string[]): Promise<number> {
  const json = takeSwitch(args, '--json');
  noMoreArgs(args);
  const client = await connectDaemon(socket);
  try {
    const r = await client.request('netcheck', {});
    if (json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return 0;
    }
    const lines = [
      'Report:',
      `\t* UDP: ${r.udp}`,
      `\t* Public endpoints: ${r.publicEndpoints.length > 0 ? r.publicEndpoints.join(', ') : '(none: STUN got no answer)'}`,
      `\t* MappingVariesByDestIP: ${r.mappingVariesByDestIP}`,
      `\t* Endpoints reported to control: ${r.endpoints.join(', ') || '(none)'}`,
      `\t* Nearest DERP: ${r.preferredDERP ? `region ${r.preferredDERP}` : '(none)'}${
        r.derp ? `, ${r.derp.latencyMs.toFixed(1)} ms over DERP` : ' (not connected)'
      }`,
      `\t* DERP latency (${r.latencyMethod}):`,
      ...Object.entries(r.regionLatencyMs)
        .sort((a, b) => a[1] - b[1])
        .map(([id, ms]) => `\t\t- region ${id}: ${ms.toFixed(1)} ms`),
      `\t* DERP connections: ${r.derpConnected.length > 0 ? r.derpConnected.map((id) => `region ${id}`).join(', ') : '(none)'}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    client.close();
  }
}
