// Tailscale's standalone DERP server (`derper`, built by prereqs.sh at the tailscaled version) in a lab namespace:
// plain HTTP on <addr>:<port> (derper serves TLS only on :443 or with --certmode manual) and STUN on <addr>:3478.
// Its key lives in a config file, so a restart keeps the server's identity. derperRegion() gives the entry for
// Headscale's derp.paths (startHeadscale's derpRegions option).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { YamlMap } from './headscale.ts';
import type { Namespace } from './netns.ts';
import { delay, type ManagedProcess } from './proc.ts';
import { goBinary } from './tools.ts';

export const derperBinary = (): string | null => goBinary('derper');
derperBinary(); // on PATH for requireTools(t, ['derper'])

export interface DerperOptions {
  /** An address of the namespace the server binds (documentation range). */
  addr: string;
  port?: number; // HTTP, default 80
  stunPort?: number; // default 3478
}

/** Headscale's derp.paths region entry for a derper at addr (plain HTTP on port, STUN on stunPort). */
export function derperRegion(id: number, code: string, addr: string, port = 80, stunPort = 3478): YamlMap {
  return {
    regionid: id,
    regioncode: code,
    regionname: `Lab derper ${code}`,
    nodes: [{ name: `${id}a`, regionid: id, hostname: addr, ipv4: addr, stunport: stunPort, derpport: port }],
  };
}

export interface Derper {
  readonly addr: string;
  readonly port: number;
  readonly stunPort: number;
  /** SIGKILL (a crash, not a goodbye to clients). */
  kill(): Promise<void>;
  /** Starts it again on the same address with the same key; resolves once it accepts TCP. */
  start(): Promise<void>;
  output(): string;
}

const START_MS = 10_000;
const PROBE_JS =
  'fetch(process.argv[1],{signal:AbortSignal.timeout(1000)}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))';

export async function startDerper(ns: Namespace, o: DerperOptions): Promise<Derper> {
  const bin = derperBinary();
  if (!bin) throw new Error('derper not found (PATH, $(go env GOPATH)/bin); run test/setup/prereqs.sh');
  const port = o.port ?? 80;
  const stunPort = o.stunPort ?? 3478;
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-derper-'));
  let proc: ManagedProcess | undefined;
  const earlier: string[] = [];
  const output = () => [...earlier, proc?.output() ?? ''].join('\n--- restarted ---\n');

  const start = async (): Promise<void> => {
    if (proc) earlier.push(proc.output());
    const cmd = [bin, '-a', `${o.addr}:${port}`, '-http-port', '-1', '-stun-port', String(stunPort)];
    const p = ns.spawn([...cmd, '-c', path.join(dir, 'derper.json'), '-hostname', o.addr], {
      label: `derper ${o.addr}`,
    });
    proc = p;
    // Lab teardown stops the process; its key file goes with it.
    void p.exited.then(() => {
      if (ns.lab.isClosed) void rm(dir, { recursive: true, force: true });
    });
    const deadline = Date.now() + START_MS;
    while (Date.now() < deadline && !p.hasExited) {
      // /derp/probe answers 200 once the HTTP server runs
      const r = await ns.run([process.execPath, '-e', PROBE_JS, `http://${o.addr}:${port}/derp/probe`], {
        timeoutMs: 3_000,
      });
      if (r.code === 0) return;
      await delay(100);
    }
    throw new Error(`derper on ${o.addr}:${port} did not start\n--- derper output:\n${output()}`);
  };
  await start();
  return {
    addr: o.addr,
    port,
    stunPort,
    async kill() {
      proc?.signal('SIGKILL');
      await proc?.exited;
    },
    start,
    output,
  };
}
