#!/usr/bin/env node
// A tiny SOCKS5 UDP ASSOCIATE client (RFC 1928 §7) for the lab: sends one datagram through the proxy and prints
// the first answer's source and payload as JSON, then exits. No dependencies.
//   node socks-udp.mjs <proxy host> <proxy port> <target host or name> <target port> <text | hex:HEX>
// With hex:…, the datagram is those bytes and the answer is printed as hex too.
// Exit codes: 0 answered, 1 error, 2 no answer within SOCKS_UDP_TIMEOUT_MS (default 10000).
import dgram from 'node:dgram';
import net from 'node:net';

const [proxyHost, proxyPort, target, targetPort, text = ''] = process.argv.slice(2);
const binary = text.startsWith('hex:');
const timer = setTimeout(
  () => {
    process.stderr.write('socks-udp: no answer in time\n');
    process.exit(2);
  },
  Number(process.env.SOCKS_UDP_TIMEOUT_MS ?? 10_000),
);

function address(host, port) {
  const p = Buffer.from([port >> 8, port & 0xff]);
  if (net.isIPv4(host)) return Buffer.concat([Buffer.from([1, ...host.split('.').map(Number)]), p]);
  const name = Buffer.from(host);
  return Buffer.concat([Buffer.from([3, name.length]), name, p]);
}

function decode(b, off) {
  if (b[off] === 1)
    return { host: [...b.subarray(off + 1, off + 5)].join('.'), port: b.readUInt16BE(off + 5), used: 7 };
  if (b[off] === 4) {
    const g = [];
    for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(off + 1 + i).toString(16));
    return { host: g.join(':'), port: b.readUInt16BE(off + 17), used: 19 };
  }
  throw new Error(`address type ${b[off]}`);
}

const tcp = net.connect({ host: proxyHost, port: Number(proxyPort) });
let got = Buffer.alloc(0);
let stage = 0;
tcp.on('error', (e) => {
  process.stderr.write(`socks-udp: ${e.message}\n`);
  process.exit(1);
});
tcp.on('connect', () => tcp.write(Buffer.from([5, 1, 0])));
tcp.on('data', (d) => {
  got = Buffer.concat([got, d]);
  if (stage === 0 && got.length >= 2) {
    if (got[1] !== 0) throw new Error('the proxy wants authentication');
    got = got.subarray(2);
    stage = 1;
    tcp.write(Buffer.concat([Buffer.from([5, 3, 0]), address('0.0.0.0', 0)]));
  }
  if (stage === 1 && got.length >= 10) {
    if (got[1] !== 0) {
      process.stderr.write(`socks-udp: UDP ASSOCIATE refused with reply ${got[1]}\n`);
      process.exit(1);
    }
    const relay = decode(got, 3);
    stage = 2;
    const udp = dgram.createSocket(net.isIPv6(relay.host) ? 'udp6' : 'udp4');
    udp.on('message', (m) => {
      const from = decode(m, 3);
      const body = m.subarray(3 + from.used);
      const shown = binary ? { hex: body.toString('hex') } : { text: body.toString() };
      process.stdout.write(`${JSON.stringify({ from: `${from.host}:${from.port}`, ...shown })}\n`);
      clearTimeout(timer);
      udp.close();
      tcp.destroy();
    });
    const payload = binary ? Buffer.from(text.slice(4), 'hex') : Buffer.from(text);
    const msg = Buffer.concat([Buffer.from([0, 0, 0]), address(target, Number(targetPort)), payload]);
    // Datagrams may be lost while paths settle: a few tries, one a second.
    const send = () => udp.send(msg, relay.port, relay.host === '0.0.0.0' ? proxyHost : relay.host);
    send();
    const again = setInterval(send, 1_000);
    udp.on('close', () => clearInterval(again));
  }
});
