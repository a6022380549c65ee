// Bulk TCP through the userspace stack against the Linux kernel's TCP: a TUN (MTU 1280, like the tailnet) moved
// into a lab namespace, a Python sink/source there, and the stack dialing it. Prints MB/s per run and the median
// for each direction. Informal (the machine is shared): run under nice, compare medians of the same script.
//   node --import tsx test/bench/netstack-kernel.ts [--mb 100] [--runs 3] [--kb BUFFER] [--root DIR (whose netstack)]
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { NetStack as NetStackType } from '../../main/engine/netstack/stack.ts';
import type { TcpSocket } from '../../main/engine/netstack/tcp-socket.ts';
import { type NativeTunDevice, TunDevice } from '../../main/engine/tun/native.ts';
import { execCommand, Lab } from '../interop/lab/netns.ts';
import { intOption, ROOT } from './common.ts';

const { values } = parseArgs({
  options: { mb: { type: 'string' }, runs: { type: 'string' }, root: { type: 'string' }, kb: { type: 'string' } },
});
/** --kb: receive and send buffer per connection, in KiB (default: the stack's). */
const bufKb = values.kb ? intOption('kb', values.kb, 1024, 65_536) : undefined;
const MB = intOption('mb', values.mb, 100, 10_000);
const RUNS = intOption('runs', values.runs, 3, 20);
const root = path.resolve(values.root ?? ROOT);
const { NetStack } = (await import(path.join(root, 'main/engine/netstack/stack.ts'))) as {
  NetStack: typeof NetStackType;
};

// One connection per request: "down N" gets N bytes then EOF; "up N" reads N bytes, then answers "ok".
const SERVER = `
import socket, threading
blk = bytes(1 << 20)
def serve(c):
    f = c.makefile('rb')
    verb, n = f.readline().split()
    n = int(n)
    if verb == b'down':
        while n > 0:
            k = min(n, len(blk)); c.sendall(blk[:k]); n -= k
        c.shutdown(socket.SHUT_WR)
    else:
        buf = bytearray(1 << 20)
        while n > 0:
            k = f.readinto(memoryview(buf)[:min(n, len(buf))])
            if not k: break
            n -= k
        c.sendall(b'ok')
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 9000)); s.listen(16)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

function dial(stack: NetStackType): Promise<TcpSocket> {
  return new Promise((ok, fail) => {
    const s = stack.connect('100.100.0.2', 9000);
    s.once('connect', () => ok(s));
    s.once('error', fail);
  });
}

async function down(stack: NetStackType, bytes: number): Promise<number> {
  const s = await dial(stack);
  const t0 = performance.now();
  let got = 0;
  s.on('data', (d: Buffer) => {
    got += d.length;
  });
  s.write(`down ${bytes}\n`);
  await new Promise<void>((r, j) => {
    s.on('end', r);
    s.on('error', j);
  });
  s.destroy();
  if (got !== bytes) throw new Error(`got ${got} of ${bytes} bytes`);
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

async function up(stack: NetStackType, bytes: number): Promise<number> {
  const s = await dial(stack);
  const t0 = performance.now();
  s.write(`up ${bytes}\n`);
  const block = Buffer.alloc(1 << 20);
  let answer = '';
  s.on('data', (d: Buffer) => {
    answer += d.toString();
  });
  const ended = new Promise<void>((r, j) => {
    s.on('end', r);
    s.on('error', j);
  });
  for (let left = bytes; left > 0; left -= block.length) {
    if (!s.write(left >= block.length ? block : block.subarray(0, left))) {
      await new Promise((r) => s.once('drain', r));
    }
  }
  s.end();
  await ended;
  s.destroy();
  if (answer !== 'ok') throw new Error(`the sink answered ${JSON.stringify(answer)}`);
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const lab = new Lab();
let tun: NativeTunDevice | undefined;
try {
  const ns = await lab.addNamespace('nsbench');
  const tcp = bufKb ? { rcvBuf: bufKb * 1024, sndBuf: bufKb * 1024 } : {};
  const stack = new NetStack({ addresses: ['100.100.0.1'], output: (p) => tun?.write(p), tcp });
  tun = new TunDevice('', {});
  tun.start(
    (buf, lengths, count) => {
      let off = 0;
      for (let i = 0; i < count; i++) {
        stack.deliver(buf.subarray(off, off + lengths[i]));
        off += lengths[i];
      }
    },
    () => {},
  );
  await execCommand('ip', ['link', 'set', tun.name, 'netns', ns.name]);
  // A queue like the data path's UDP socket buffers (4 MiB), not the TUN's default 500 packets (a burst of a
  // 1 MiB window would overflow it: loss the real path does not have).
  await ns.exec(['ip', 'link', 'set', tun.name, 'mtu', '1280', 'txqueuelen', '4000', 'up']);
  await ns.exec(['ip', 'addr', 'add', '100.100.0.2/24', 'dev', tun.name]);
  ns.spawn(['python3', '-c', SERVER], { label: 'sink' });
  for (let i = 0; i < 50; i++) {
    try {
      (await dial(stack)).destroy();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const bytes = MB * 1e6;
  const res = { down: [] as number[], up: [] as number[] };
  for (let r = 0; r < RUNS; r++) {
    res.down.push(await down(stack, bytes));
    res.up.push(await up(stack, bytes));
    console.log(`run ${r + 1}: kernel→stack ${res.down[r].toFixed(1)} MB/s, stack→kernel ${res.up[r].toFixed(1)} MB/s`);
  }
  console.log(`stack drops ${JSON.stringify(stack.drops)}`);
  const snmp = (await ns.exec(['cat', '/proc/net/snmp'])).split('\n').filter((l) => l.startsWith('Tcp:'));
  const retrans = snmp[1]?.split(/\s+/)[snmp[0].split(/\s+/).indexOf('RetransSegs')];
  const link = await ns.exec(['ip', '-s', 'link', 'show', tun.name]);
  console.log(`kernel: RetransSegs ${retrans}; TUN tx ${link.split('TX:')[1]?.split('\n')[1]?.trim()}`);
  console.log(
    `median of ${RUNS} (${MB} MB, ${root}): kernel→stack ${median(res.down).toFixed(1)} MB/s, stack→kernel ${median(res.up).toFixed(1)} MB/s`,
  );
  stack.close();
} finally {
  tun?.close();
  await lab.cleanup();
}
