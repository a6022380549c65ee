// A fake DERP server on loopback for unit tests: answers the upgrade, does the ServerKey/ClientInfo/ServerInfo
// handshake with a fixed key, then lets the test read frames and write anything (well-formed or hostile).
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTLSServer } from 'node:tls';
import { openFrom, sealTo } from '../../main/engine/crypto/naclbox.ts';
import * as F from '../../main/engine/derp/frames.ts';
import { generateKeyPair } from '../../main/engine/wg/crypto.ts';

export interface FakeConn {
  sock: Socket;
  frame(): Promise<F.DerpFrame>;
  /** 101 + ServerKey, read ClientInfo, send ServerInfo; resolves with the client's key and JSON. */
  accept(): Promise<{ client: Uint8Array; info: Record<string, unknown> }>;
}

export const serverKeys = generateKeyPair();

export function fakeConn(sock: Socket): FakeConn {
  const parser = new F.FrameParser();
  let upgraded = false;
  let wake: () => void = () => {};
  let head = '';
  sock.on('error', () => {});
  sock.on('data', (d: Buffer) => {
    if (!upgraded) {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      upgraded = true;
      parser.push(Buffer.from(head.slice(end + 4), 'latin1'));
    } else parser.push(d);
    wake();
  });
  const frame = async (): Promise<F.DerpFrame> => {
    for (;;) {
      const f = parser.next();
      if (f) return f;
      await new Promise<void>((r) => (wake = r));
    }
  };
  return {
    sock,
    frame,
    async accept() {
      sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n`);
      sock.write(F.buildServerKey(serverKeys.publicKey));
      const f = await frame();
      assert.equal(f.type, 'clientInfo');
      const ci = f as Extract<F.DerpFrame, { type: 'clientInfo' }>;
      const info = JSON.parse(new TextDecoder().decode(openFrom(ci.sealed, ci.key, serverKeys.privateKey)));
      sock.write(F.buildServerInfo(sealTo(new TextEncoder().encode('{"version":2}'), ci.key, serverKeys.privateKey)));
      return { client: ci.key, info };
    },
  };
}

export async function withServer(
  handler: (c: FakeConn) => Promise<void> | void,
  fn: (port: number) => Promise<void>,
  tls?: { key: Buffer; cert: Buffer },
): Promise<void> {
  const onConn = (s: Socket) => void Promise.resolve(handler(fakeConn(s))).catch(() => s.destroy());
  const srv: Server = tls ? createTLSServer(tls, onConn) : createServer(onConn);
  const open = new Set<Socket>();
  srv.on(tls ? 'secureConnection' : 'connection', (s: Socket) => open.add(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    await fn((srv.address() as { port: number }).port);
  } finally {
    for (const s of open) s.destroy();
    await new Promise((r) => srv.close(r));
  }
}
