# Lab tool: capture one WireGuard transport datagram addressed to PORT on IFACE (AF_PACKET), then send
# its UDP payload again to ADDR:PORT, twice. Prints the captured length. Used to prove replay rejection.
import socket, struct, sys, time

iface, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
raw.bind((iface, 0))
raw.settimeout(10)
deadline = time.time() + 10
while time.time() < deadline:
    pkt = raw.recv(65535)
    ihl = (pkt[0] & 0x0F) * 4
    if pkt[9] != 17:
        continue
    dport = struct.unpack('!H', pkt[ihl + 2:ihl + 4])[0]
    payload = pkt[ihl + 8:]
    if dport == port and len(payload) > 32 and payload[0] == 4:
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        out.sendto(payload, (addr, port))
        out.sendto(payload, (addr, port))
        print(len(payload))
        sys.exit(0)
sys.exit('no transport datagram seen')
