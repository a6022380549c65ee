// How this machine's apps reach the tailnet, as the window and tray show it. In userspace mode (no network
// device: the TUN needs a privilege the app lacks, or the user asked for it) the engine's "no privilege for the
// TUN" is no longer a problem to fix but a fact the notice explains, with how to get the full mode.
import { ApiError, type Health, type NetworkingView } from '../../preload/api.ts';
import type { StatusSnapshot } from '../engine/protocol.ts';
import type { AppOnlyPrefs } from './app-prefs.ts';
import { privilegeAdvice } from './engine-link.ts';

export function networkingView(
  s: StatusSnapshot | undefined,
  platform: NodeJS.Platform = process.platform,
): NetworkingView | undefined {
  const n = s?.networking;
  if (!n) return undefined;
  const view: NetworkingView = { ...n };
  if (n.reason !== undefined) view.reason = asSentence(n.reason);
  if (n.mode === 'userspace') view.fullModeAdvice = fullModeAdvice(platform);
  return view;
}

/** The engine's reason as the window prints it next to other sentences: a capital first, a full stop last. */
function asSentence(text: string): string {
  const t = text.trim();
  if (t === '') return t;
  return `${t[0]?.toUpperCase()}${t.slice(1)}${/[.!?]$/.test(t) ? '' : '.'}`;
}

/** The engine's health as the window lists it: a TUN refused for lack of privilege becomes what to do about it,
 *  unless userspace mode runs instead (then the userspace notice says it, calmly, and the list does not). */
export function healthView(s: StatusSnapshot | undefined, platform: NodeJS.Platform = process.platform): Health[] {
  const userspace = s?.networking?.mode === 'userspace';
  const out: Health[] = [];
  for (const h of s?.health ?? []) {
    const advice = h.code === 'data-path' ? privilegeAdvice(h.message, platform) : undefined;
    if (!advice) out.push(h);
    else if (!userspace) out.push({ code: 'no-tun-privilege', message: advice });
  }
  return out;
}

/** One sentence: how to have a network device, so every app reaches the tailnet without a proxy. */
export function fullModeAdvice(platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return 'For full mode, install the Trellis service (or run Trellis as administrator).';
  if (platform === 'darwin')
    return 'For full mode, install the Trellis helper or start "sudo trellis daemon", then restart Trellis.';
  return (
    'For full mode, start the Trellis daemon as root ("sudo trellis daemon --state-dir /var/lib/trellis", ' +
    'or the trellis-daemon service the packages install), then restart Trellis.'
  );
}

/** The two proxies cannot share one address. */
export function checkProxyPair(prefs: Pick<AppOnlyPrefs, 'socks5Listen' | 'httpProxyListen'>): void {
  if (prefs.socks5Listen !== '' && prefs.socks5Listen === prefs.httpProxyListen) {
    throw new ApiError('bad-request', 'The SOCKS5 and HTTP proxies need different ports.', {
      field: 'httpProxyListen',
    });
  }
}
