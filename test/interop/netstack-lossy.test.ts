// The userspace stack against the Linux kernel's TCP over a bad path: stack ⇄ TUN ⇄ router namespace ⇄ veth ⇄
// kernel namespace, with the router's veth ends impaired both ways by netem (3% loss, 25% reordered, 2%
// duplicated, 1% corrupted). 6 MB each way arrive intact (sha256), both senders had to retransmit (fast
// retransmits among them), and corrupted segments were caught by the stack's checksum and counted.
// Kernels without sch_netem (some sandboxes) get the same impairments from iptables' random drop in the router
// (loss, in the kernel) plus duplication, reordering and corruption at the TUN; the test says loudly which ran.
// Needs root, ip, tc, iptables, curl, python3 and /dev/net/tun: under CI their absence fails the test.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { NetStack } from '../../main/engine/netstack/stack.ts';
import type { TcpInfo } from '../../main/engine/netstack/tcp-socket.ts';
import type { NativeTunDevice } from '../../main/engine/tun/native.ts';
import { prng, seededBytes, sha256 } from '../unit/netstack-link.ts';
import { type Namespace, withLab } from './lab/netns.ts';
import { dial, httpGet, tunAvailable, until, wireTun } from './lab/netstack-tun.ts';
import { requireTools } from './lab/tools.ts';

const STACK4 = '100.100.0.1';
const STACK6 = 'fd00:77::1';
const KERNEL4 = '10.77.0.2';
const SIZE = 6 * 1024 * 1024;
const NETEM = ['loss', '3%', 'reorder', '25%', '50%', 'duplicate', '2%', 'corrupt', '1%'];

/** One TCP counter of a namespace's kernel (/proc/net/snmp "Tcp:" or /proc/net/netstat "TcpExt:"). */
async function kernelCounter(ns: Namespace, file: 'snmp' | 'netstat', group: string, name: string): Promise<number> {
  const lines = (await ns.exec(['cat', `/proc/net/${file}`])).split('\n').filter((l) => l.startsWith(`${group}:`));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const i = names.indexOf(name);
  return i > 0 ? Number(values[i]) : 0;
}

/** Duplicates, holds back (5-15 ms, so later packets overtake) and corrupts (one bit, a copy) a share of packets. */
function impair(next: (p: Uint8Array) => void, rand: () => number, isClosed: () => boolean) {
  const counts = { duplicated: 0, reordered: 0, corrupted: 0 };
  const later = (p: Uint8Array, ms: number) => setTimeout(() => isClosed() || next(p), ms);
  const fn = (packet: Uint8Array) => {
    let p = packet;
    if (rand() < 0.01) {
      p = Uint8Array.from(packet);
      p[Math.floor(rand() * p.length)] ^= 1 << Math.floor(rand() * 8);
      counts.corrupted++;
    }
    if (rand() < 0.02) {
      counts.duplicated++;
      later(Uint8Array.from(p), 1);
    }
    if (rand() < 0.25) {
      counts.reordered++;
      later(p === packet ? Uint8Array.from(p) : p, 5 + rand() * 10); // the TUN reuses its read buffer
      return;
    }
    next(p);
  };
  return Object.assign(fn, { counts });
}

test('against the kernel over a lossy, reordering, duplicating, corrupting path both ways: 6 MB each way intact', {
  timeout: 400_000,
}, async (t) => {
  if (!requireTools(t, ['ip', 'tc', 'iptables', 'ip6tables', 'curl', 'python3', 'sha256sum']) || !tunAvailable(t)) {
    return;
  }
  const data = Buffer.from(seededBytes(4242, SIZE));
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-netstack-lossy-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'part'), data);
  await withLab(t, async (lab) => {
    const router = await lab.addNamespace('router');
    const kernel = await lab.addNamespace('kernel');
    const { ifA, ifB } = await lab.linkVeth(router, kernel, {
      a: '10.77.0.1/24',
      b: `${KERNEL4}/24`,
      a6: 'fd00:78::1/64',
      b6: 'fd00:78::2/64',
    });
    await router.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await router.exec(['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
    await kernel.exec(['ip', 'route', 'add', '100.100.0.0/24', 'via', '10.77.0.1']);
    await kernel.exec(['ip', '-6', 'route', 'add', 'fd00:77::/64', 'via', 'fd00:78::1']);

    // netem on both veth ends of the router: stack→kernel leaves by ifA, kernel→stack by ifB.
    const netem = await router.run(['tc', 'qdisc', 'add', 'dev', ifA, 'root', 'netem', 'delay', '2ms', ...NETEM]);
    const useNetem = netem.code === 0;
    if (useNetem) {
      await kernel.exec(['tc', 'qdisc', 'add', 'dev', ifB, 'root', 'netem', 'delay', '2ms', ...NETEM]);
    } else {
      assert.match(netem.stderr, /unknown|not found|No such file/i, `tc netem failed: ${netem.stderr}`);
      console.error(
        `\n!!!!! "${t.name}": this kernel has no sch_netem (${netem.stderr.trim()}); impairing with iptables' ` +
          'random drop in the router (loss) and at the TUN (duplication, reordering, corruption) instead !!!!!\n',
      );
      for (const cmd of ['iptables', 'ip6tables']) {
        await router.exec([
          cmd,
          '-A',
          'FORWARD',
          '-m',
          'statistic',
          '--mode',
          'random',
          '--probability',
          '0.03',
          '-j',
          'DROP',
        ]);
      }
    }

    let closed = false;
    let tun: NativeTunDevice | undefined;
    const rand = prng(2027);
    const passOut = (p: Uint8Array) => void tun?.write(p);
    const out = useNetem ? Object.assign(passOut, { counts: undefined }) : impair(passOut, rand, () => closed);
    const stack = new NetStack({ addresses: [STACK4, STACK6], output: (p) => (closed ? undefined : out(p)) });
    const passIn = (p: Uint8Array) => stack.deliver(p);
    const inbound = useNetem ? passIn : impair(passIn, rand, () => closed);
    tun = await wireTun(router, stack, ['100.100.0.2/24', 'fd00:77::2/64'], inbound);
    try {
      const retransBefore = await kernelCounter(kernel, 'snmp', 'Tcp', 'RetransSegs');
      kernel.spawn(['python3', '-m', 'http.server', '8000', '--bind', '::', '--directory', dir], {
        label: 'http.server',
      });
      await until('the kernel HTTP server', async () => {
        try {
          (await dial(stack, KERNEL4, 8000)).destroy();
          return true;
        } catch {
          return false;
        }
      });
      // Kernel → stack (IPv4): the kernel is the sender.
      const body = await httpGet(await dial(stack, KERNEL4, 8000), KERNEL4, '/part', 240_000);
      assert.equal(sha256(body), sha256(data), 'kernel to stack over the bad path: intact');
      const kernelRetrans = (await kernelCounter(kernel, 'snmp', 'Tcp', 'RetransSegs')) - retransBefore;
      assert.ok(kernelRetrans > 0, `the kernel had to retransmit (${kernelRetrans} segments)`);

      // Stack → kernel (IPv6): curl in the kernel namespace fetches from a listener on the stack.
      let info: TcpInfo | undefined;
      stack.listen(8080, (s) => {
        s.on('error', () => {});
        s.once('data', () => {
          s.end(Buffer.concat([Buffer.from(`HTTP/1.0 200 OK\r\nContent-Length: ${SIZE}\r\n\r\n`), data]));
          s.on('finish', () => {
            info = s.tcpInfo; // our FIN is acknowledged: everything was, and the connection is still there
          });
        });
      });
      const got = await kernel.exec(['sh', '-c', `curl -sS --max-time 240 http://[${STACK6}]:8080/part | sha256sum`], {
        timeoutMs: 260_000,
      });
      assert.equal(got.split(' ')[0], sha256(data), 'stack to kernel over the bad path: intact');
      await until('our FIN to be acknowledged', () => info !== undefined, 60_000);
      assert.ok(info!.retransmits > 0 && info!.fastRetransmits > 0, `the stack retransmitted: ${JSON.stringify(info)}`);
      assert.ok((stack.drops['bad-checksum'] ?? 0) > 0, `corruption was caught: ${JSON.stringify(stack.drops)}`);
      if (!useNetem) {
        for (const c of [out.counts!, (inbound as ReturnType<typeof impair>).counts]) {
          assert.ok(c.duplicated > 5 && c.reordered > 50 && c.corrupted > 5, JSON.stringify(c));
        }
      }
      t.diagnostic(`impairment: ${useNetem ? 'netem' : 'iptables + TUN'}; kernel retransmits ${kernelRetrans}`);
      t.diagnostic(`stack: ${JSON.stringify(info)} drops ${JSON.stringify(stack.drops)}`);
    } finally {
      closed = true;
      stack.close();
      tun.close();
    }
  });
});
