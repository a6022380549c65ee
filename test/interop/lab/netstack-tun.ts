// A userspace NetStack joined to a lab namespace's kernel through a TUN device (the native addon): the TUN is
// made here, moved into the namespace and addressed there; the stack reads and writes its packets. Plus the small
// helpers the netstack-against-the-kernel tests share: dial, a raw HTTP/1.0 GET, a bounded wait.
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import type { NetStack } from '../../../main/engine/netstack/stack.ts';
import type { TcpSocket } from '../../../main/engine/netstack/tcp-socket.ts';
import { type NativeTunDevice, TunDevice } from '../../../main/engine/tun/native.ts';
import { collect } from '../../unit/netstack-link.ts';
import { execCommand, type Namespace } from './netns.ts';

/** True when /dev/net/tun can be opened; otherwise fails under CI, else skips loudly and returns false. */
export function tunAvailable(t: TestContext): boolean {
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    const msg = 'the kernel interop test needs /dev/net/tun';
    if (process.env.CI === 'true') throw new Error(`${msg}; under CI this is a failure, not a skip`);
    console.error(`\n!!!!! SKIPPING "${t.name}": ${msg} !!!!!\n`);
    t.skip(msg);
    return false;
  }
}

export async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function dial(stack: NetStack, address: string, port: number): Promise<TcpSocket> {
  return new Promise((ok, fail) => {
    const s = stack.connect(address, port);
    s.once('connect', () => ok(s));
    s.once('error', fail);
  });
}

/** GET over a raw stream (HTTP/1.0, so the server closes); returns the body. */
export async function httpGet(s: Duplex, host: string, pathname: string, ms = 120_000): Promise<Buffer> {
  const got = collect(s);
  s.write(`GET ${pathname} HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
  await until('the HTTP response to end', () => got.done, ms);
  const all = got.bytes();
  const at = all.indexOf('\r\n\r\n');
  assert.match(all.subarray(0, at).toString(), /^HTTP\/1\.[01] 200/);
  return all.subarray(at + 4);
}

/**
 * A TUN in `ns` (MTU 1280, the tailnet's) with the given kernel-side addresses ("a.b.c.d/n", "x::y/n"); what the
 * kernel sends to it goes to `inbound` (default: straight into the stack).
 */
export async function wireTun(
  ns: Namespace,
  stack: NetStack,
  addresses: string[],
  inbound: (p: Uint8Array) => void = (p) => stack.deliver(p),
): Promise<NativeTunDevice> {
  const tun = new TunDevice('', {});
  tun.start(
    (buf, lengths, count) => {
      let off = 0;
      for (let i = 0; i < count; i++) {
        inbound(buf.subarray(off, off + lengths[i]));
        off += lengths[i];
      }
    },
    () => {
      // A read error ends reading: the interface went away with the namespace at teardown.
    },
  );
  await execCommand('ip', ['link', 'set', tun.name, 'netns', ns.name]);
  // A queue like the data path's UDP socket buffers, not the TUN's default 500 packets (which a 1 MiB window's
  // burst overflows: loss the real path does not have).
  await ns.exec(['ip', 'link', 'set', tun.name, 'mtu', '1280', 'txqueuelen', '4000', 'up']);
  for (const a of addresses) {
    if (a.includes(':')) await ns.exec(['ip', '-6', 'addr', 'add', a, 'dev', tun.name, 'nodad']);
    else await ns.exec(['ip', 'addr', 'add', a, 'dev', tun.name]);
  }
  return tun;
}
