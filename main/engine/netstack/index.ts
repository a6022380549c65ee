// The userspace network stack's public surface: what the engine wires to the data path (NetStack) and what the
// proxies and local services use (sockets, the SOCKS5 and HTTP proxy servers).
export { type Clock, ManualClock, systemClock } from './clock.ts';
export { type MemoryWaiter, StackMemory } from './memory.ts';
export { type Dialer, DialFailureReport, ProxyDialError, type Resolver } from './proxy/dial.ts';
export { type HttpProxyOptions, HttpProxyServer } from './proxy/http.ts';
export { type Socks5Options, Socks5Server, type UdpEndpoint } from './proxy/socks5.ts';
export { NetStack, type NetStackOptions, TcpListener } from './stack.ts';
export { type TcpInfo, TcpSocket } from './tcp-socket.ts';
export { DEFAULT_TCP_CONFIG, type TcpConfig, TcpError } from './tcp-types.ts';
export { type UdpRemote, UdpSocket } from './udp.ts';
