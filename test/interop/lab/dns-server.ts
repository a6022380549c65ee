// A DNS server for the MagicDNS lab, run in a namespace:  node --import tsx dns-server.ts <ip> <port> <json>
// where json maps lowercase names to IPv4 addresses. It answers A for those names (TTL 30), NXDOMAIN for others,
// and prints "listening" once bound, then "query <name> from <address>" for each question. Stands in for the upstream resolver quad-100 forwards to.
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

const [ip = '', port = '53', json = '{}'] = process.argv.slice(2);
const names = JSON.parse(json) as Record<string, string>;
const sock = createSocket('udp4');
sock.on('message', (msg, from) => {
  let q: dnsPacket.DecodedPacket;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    return;
  }
  const question = q.questions?.[0];
  console.log(`query ${question?.name ?? '?'} from ${from.address}`);
  const addr = question ? names[question.name.toLowerCase()] : undefined;
  const answers: dnsPacket.Answer[] =
    addr && question?.type === 'A' ? [{ type: 'A', name: question.name, ttl: 30, data: addr }] : [];
  const reply = dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_AVAILABLE | (addr ? 0 : 3),
    questions: q.questions,
    answers,
  });
  sock.send(reply, from.port, from.address);
});
sock.bind(Number(port), ip, () => console.log('listening'));
