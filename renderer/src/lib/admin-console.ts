// The web admin console of a control server, for servers known to have one: Tailscale's (its control server is
// controlplane.tailscale.com, its console under login.tailscale.com). Headscale has none by default.
const TAILSCALE_HOSTS = new Set(['controlplane.tailscale.com', 'login.tailscale.com']);

export function adminConsoleURL(controlURL: string): string | undefined {
  let host: string;
  try {
    host = new URL(controlURL || 'https://controlplane.tailscale.com').hostname.toLowerCase();
  } catch {
    return undefined;
  }
  return TAILSCALE_HOSTS.has(host) ? 'https://login.tailscale.com/admin' : undefined;
}
