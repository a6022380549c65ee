// Lab tool: sends hostile datagrams to host:port — random bytes, truncated WireGuard messages and an
// initiation with a wrong MAC1 — and prints how many it sent.
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';

const [host, port] = [process.argv[2], Number(process.argv[3])];
const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
const msgs = [];
for (let i = 0; i < 300; i++) msgs.push(randomBytes(1 + ((i * 7) % 1400)));
for (const [type, size] of [
  [1, 147],
  [1, 100],
  [2, 91],
  [3, 63],
  [4, 31],
  [4, 8],
  [1, 3],
]) {
  const m = randomBytes(size);
  m[0] = type;
  for (let i = 1; i < Math.min(4, size); i++) m[i] = 0;
  msgs.push(m);
}
const badMac = randomBytes(148);
badMac.writeUInt32LE(1, 0);
msgs.push(badMac);
let sent = 0;
for (const m of msgs) {
  await new Promise((resolve, reject) => sock.send(m, port, host, (e) => (e ? reject(e) : resolve())));
  sent++;
}
sock.close();
console.log(JSON.stringify({ sent }));
