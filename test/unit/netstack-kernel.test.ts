// The userspace stack against the Linux kernel's TCP/IP: a TUN device (the native addon) moved into a lab
// namespace joins the stack to a real kernel peer. The kernel judges our segments: a Python HTTP server there
// serves 20 MB to the stack (IPv4, then IPv6), curl there fetches 20 MB from a listener on the stack (IPv6), ping
// gets echo replies, curl on the host fetches through the SOCKS5 and HTTP proxies dialing over the stack, and a
// kernel UDP echo answers the stack's datagrams. (The same kernel over a lossy path: test/interop/netstack-lossy.test.ts.)
// Needs root, ip, curl, python3 and /dev/net/tun: under CI their absence fails the test; elsewhere it is skipped.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { HttpProxyServer } from '../../main/engine/netstack/proxy/http.ts';
import { Socks5Server } from '../../main/engine/netstack/proxy/socks5.ts';
import { NetStack } from '../../main/engine/netstack/stack.ts';
import type { NativeTunDevice } from '../../main/engine/tun/native.ts';
import { execCommand, type Namespace, withLab } from '../interop/lab/netns.ts';
import { dial, httpGet, tunAvailable, until, wireTun } from '../interop/lab/netstack-tun.ts';
import { requireTools } from '../interop/lab/tools.ts';
import { seededBytes, sha256 } from './netstack-link.ts';

const STACK4 = '100.100.0.1';
const KERNEL4 = '100.100.0.2';
const STACK6 = 'fd00:77::1';
const KERNEL6 = 'fd00:77::2';
const BIG = Buffer.from(seededBytes(2026, 20 * 1024 * 1024));

test('the userspace stack against the Linux kernel over a TUN: 20 MB each way, ping, SOCKS5, HTTP proxy, UDP', {
  timeout: 300_000,
}, async (t) => {
  if (!requireTools(t, ['ip', 'curl', 'python3', 'sha256sum']) || !tunAvailable(t)) return;
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-netstack-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'big'), BIG);
  await withLab(t, async (lab) => {
    const ns = await lab.addNamespace('kern');
    let tun: NativeTunDevice | undefined;
    let writeErrors = 0;
    const stack = new NetStack({
      addresses: [STACK4, STACK6],
      output: (p) => {
        try {
          tun?.write(p);
        } catch {
          writeErrors++; // the interface is down or gone (teardown)
        }
      },
    });
    tun = await wireTun(ns, stack, [`${KERNEL4}/24`, `${KERNEL6}/64`]);
    // Close the device before the lab deletes the namespace (and with it the interface).
    t.after(() => {
      stack.close();
      tun?.close();
    });
    try {
      await exercise(t, ns, stack, dir);
    } finally {
      stack.close();
      tun.close();
    }
    assert.equal(writeErrors, 0, 'every packet the stack sent reached the TUN');
  });
});

async function exercise(t: TestContext, ns: Namespace, stack: NetStack, dir: string): Promise<void> {
  {
    // 1. The kernel pings the stack (ICMP and ICMPv6 echo).
    await ns.exec(['ping', '-c', '2', '-W', '2', STACK4]);
    await ns.exec(['ping', '-6', '-c', '2', '-W', '2', STACK6]);
    assert.ok(stack.counters.echoReplies >= 4);

    // 2. The stack dials a kernel HTTP server and fetches 20 MB over IPv4, then over IPv6.
    ns.spawn(['python3', '-m', 'http.server', '8000', '--bind', '::', '--directory', dir], { label: 'http.server' });
    await until('the kernel HTTP server', async () => {
      try {
        (await dial(stack, KERNEL4, 8000)).destroy();
        return true;
      } catch {
        return false;
      }
    });
    const body = await httpGet(await dial(stack, KERNEL4, 8000), KERNEL4, '/big');
    assert.equal(sha256(body), sha256(BIG), 'kernel to stack: 20 MB intact');
    const body6 = await httpGet(await dial(stack, KERNEL6, 8000), `[${KERNEL6}]`, '/big');
    assert.equal(sha256(body6), sha256(BIG), 'kernel to stack over IPv6: 20 MB intact');

    // 3. curl in the namespace fetches 20 MB from a listener on the stack over IPv6.
    stack.listen(8080, (s) => {
      s.on('error', () => {});
      s.once('data', () => {
        s.end(Buffer.concat([Buffer.from(`HTTP/1.0 200 OK\r\nContent-Length: ${BIG.length}\r\n\r\n`), BIG]));
      });
    });
    const out = await ns.exec(['sh', '-c', `curl -sS --max-time 120 http://[${STACK6}]:8080/big | sha256sum`], {
      timeoutMs: 150_000,
    });
    assert.equal(out.split(' ')[0], sha256(BIG), 'stack to kernel: 20 MB intact');

    // 4. curl on the host, through the SOCKS5 proxy, over the stack, to the kernel's server.
    const socks = new Socks5Server({ dial: (a, p) => dial(stack, a, p) });
    const { port } = await socks.listen(0);
    t.after(() => socks.close());
    const viaSocks = await execCommand(
      'sh',
      ['-c', `curl -sS --max-time 120 --socks5 127.0.0.1:${port} http://${KERNEL4}:8000/big | sha256sum`],
      { timeoutMs: 150_000 },
    );
    assert.equal(viaSocks.split(' ')[0], sha256(BIG), 'SOCKS5 through the stack to the kernel: 20 MB intact');

    // 5. The same through the HTTP proxy (plain absolute-URI request).
    const http = new HttpProxyServer({ dial: (a, p) => dial(stack, a, p) });
    const hp = (await http.listen(0)).port;
    t.after(() => http.close());
    const viaHttp = await execCommand(
      'sh',
      ['-c', `curl -sS --max-time 120 -x http://127.0.0.1:${hp} http://${KERNEL4}:8000/big | sha256sum`],
      { timeoutMs: 150_000 },
    );
    assert.equal(viaHttp.split(' ')[0], sha256(BIG), 'HTTP proxy through the stack to the kernel: 20 MB intact');

    // 6. UDP both ways: a kernel UDP echo server answers datagrams from the stack (IPv4 and IPv6 checksums).
    const echo = [
      'import socket',
      's = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)',
      's.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)',
      "s.bind(('::', 7007))",
      'while True:',
      '    d, a = s.recvfrom(65535)',
      '    s.sendto(d, a)',
    ].join('\n');
    ns.spawn(['python3', '-c', echo], { label: 'udp echo' });
    for (const target of [KERNEL4, KERNEL6]) {
      const u = stack.bindUdp();
      const replies: string[] = [];
      u.on('message', (m: Buffer) => replies.push(m.toString()));
      await until(`a UDP echo from ${target}`, () => {
        u.send(Buffer.from(`hello ${target}`), 7007, target);
        return replies.length > 0;
      });
      assert.equal(replies[0], `hello ${target}`);
      u.close();
    }
  }
}
