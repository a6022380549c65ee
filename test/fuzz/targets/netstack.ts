// Packets from peers into the userspace TCP/IP stack: a batch of length-prefixed packets (a zero length moves the
// clock on by a second, so timers run) into a fresh stack with a listener that answers and closes. The stack never
// throws, stays within its connection bound, and holds bounded bytes.
import { ManualClock } from '../../../main/engine/netstack/clock.ts';
import { NetStack } from '../../../main/engine/netstack/stack.ts';
import { Bytes, check } from '../contract.ts';

const MAX_CONNECTIONS = 16;
const BUF = 16 * 1024;

export function fuzz(data: Buffer): void {
  const clock = new ManualClock();
  let n = 0;
  const stack = new NetStack({
    addresses: ['100.64.0.1', 'fd7a:115c:a1e0::1'],
    clock,
    output: () => {},
    random32: () => (n = (n * 1103515245 + 12345) >>> 0),
    maxConnections: MAX_CONNECTIONS,
    maxHalfOpen: 8,
    tcp: { rcvBuf: BUF, sndBuf: BUF },
  });
  stack.listen(80, (s) => {
    s.on('error', () => {});
    s.on('data', () => {});
    s.end(new Uint8Array(3000));
  });
  const echo = stack.bindUdp(7);
  echo.on('message', (m: Buffer, r: { address: string; port: number }) => echo.send(m, r.port, r.address));
  const b = new Bytes(data);
  while (b.left > 0) {
    const len = b.u16() % 2048;
    if (len === 0) {
      clock.advance(1000);
      continue;
    }
    stack.deliver(new Uint8Array(b.take(len)));
    check(stack.connectionCount <= MAX_CONNECTIONS, 'more connections than the bound');
    check(stack.bufferedBytes <= MAX_CONNECTIONS * 2 * (BUF + 3000), 'more bytes held than the buffers allow');
  }
  clock.advance(600_000);
  stack.close();
}
