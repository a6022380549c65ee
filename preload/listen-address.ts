// The proxy addresses the user types in Settings: loopback "host:port" only, so the proxies that reach the tailnet
// without a network device are open to this machine's apps and never to its network. Pure; shared by the
// controller (which decides) and the window (which checks before it sends).

/** Where the app's engine offers its proxies in userspace mode unless the user says otherwise. */
export const DEFAULT_SOCKS5_LISTEN = '127.0.0.1:1055';
export const DEFAULT_HTTP_PROXY_LISTEN = '127.0.0.1:1056';

/** "127.0.0.1:1055", "localhost:1055" or "[::1]:1055", normalized (trimmed); '' turns that proxy off. */
export function checkListenAddress(text: string, what: string): { address: string } | { error: string } {
  const t = text.trim();
  if (t === '') return { address: '' };
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(t);
  if (!m) return { error: `${what} needs an address and a port, like ${example(what)}.` };
  const host = (m[1] ?? m[2] ?? '').toLowerCase();
  const port = Number(m[3]);
  if (!isLoopback(host)) {
    return { error: `${what} must listen on this computer only (127.0.0.1, localhost or [::1]), not ${host}.` };
  }
  if (port < 1 || port > 65535) return { error: `${what}: ${m[3]} is not a port (1 to 65535).` };
  return { address: m[1] !== undefined ? `[${host}]:${port}` : `${host}:${port}` };
}

function example(what: string): string {
  return what.includes('SOCKS') ? DEFAULT_SOCKS5_LISTEN : DEFAULT_HTTP_PROXY_LISTEN;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return !!v4 && v4.slice(1).every((o) => Number(o) <= 255);
}
