// The tray as data: which icon, tooltip and menu each app state gets. Electron's tray.ts only renders this,
// so every state's menu is unit-tested without Electron.
import type { AccountView, AppPrefs, AppSnapshot } from '../../preload/api.ts';
import { exitNodeMenu, exitNodeTooltip, usingExitNode } from './tray-exit-node.ts';
import { isWebUrl } from './views.ts';

export type TrayIconState =
  | 'disconnected'
  | 'connecting'
  | 'connected'
  | 'needs-login'
  | 'file-received'
  /** Internet traffic leaves through an exit node. */
  | 'exit-node'
  | 'exit-node-file-received'
  /** An exit node is chosen but offline or gone: internet traffic is held. */
  | 'exit-node-held';
export type TrayAction =
  | 'connect'
  | 'disconnect'
  | 'login'
  /** Opens the pending login page again (the browser tab may have been closed). */
  | 'login-page'
  | 'logout'
  | 'admin-console'
  | 'open'
  | 'quit';

export type TrayItem =
  | { kind: 'action'; action: TrayAction; label: string; enabled: boolean }
  /** Clicking copies text to the clipboard. */
  | { kind: 'copy'; label: string; text: string }
  | { kind: 'submenu'; label: string; items: TrayItem[] }
  | { kind: 'info'; label: string }
  /** An account: checked when in use; clicking another switches to it. */
  | { kind: 'account'; id: string; label: string; active: boolean }
  /** A preference set by clicking: a radio item (one of a group) or a checkbox (set holds the flipped value). */
  | { kind: 'pref'; style: 'radio' | 'checkbox'; label: string; checked: boolean; set: Partial<AppPrefs> }
  | { kind: 'separator' };

export interface TrayModel {
  icon: TrayIconState;
  tooltip: string;
  items: TrayItem[];
}

/** Network devices listed in the tray before the rest is left to the window. */
const TRAY_PEER_LIMIT = 30;

export function trayIcon(s: AppSnapshot, unseenFiles: boolean): TrayIconState {
  if (s.link === 'none' || s.state === 'NoState' || s.state === 'Stopped') {
    return unseenFiles ? 'file-received' : 'disconnected';
  }
  if (s.state === 'NeedsLogin' || s.state === 'NeedsMachineAuth') return 'needs-login';
  if (s.state === 'Starting') return 'connecting';
  const exit = usingExitNode(s);
  if (exit === 'held') return 'exit-node-held';
  if (exit === 'active') return unseenFiles ? 'exit-node-file-received' : 'exit-node';
  return unseenFiles ? 'file-received' : 'connected';
}

/**
 * The login page a login under way waits on, when it is one a browser may open (http/https only: the URL comes
 * from the control server); undefined when no login waits on the browser.
 */
export function trayLoginURL(s: AppSnapshot): string | undefined {
  if (s.link === 'none' || (s.state !== 'NeedsLogin' && s.state !== 'NoState')) return undefined;
  return s.authURL && isWebUrl(s.authURL) ? s.authURL : undefined;
}

function tooltipFor(s: AppSnapshot): string {
  if (s.link === 'none') return 'Trellis: no engine';
  if (trayLoginURL(s)) return 'Trellis: finish logging in in your browser';
  switch (s.state) {
    case 'Running':
      return `Trellis: connected${s.self ? ` as ${s.self.name}` : ''}${exitNodeTooltip(s)}`;
    case 'Starting':
      return 'Trellis: connecting…';
    case 'NeedsLogin':
      return 'Trellis: log in needed';
    case 'NeedsMachineAuth':
      return 'Trellis: waiting for the admin to approve this device';
    default:
      return 'Trellis: disconnected';
  }
}

/** An account as one line: who (or the tailnet), and its server's host shown plainly. */
export function accountLabel(a: AccountView): string {
  const who = a.loginName || a.tailnet || 'not logged in yet';
  let server = a.controlURL;
  try {
    server = new URL(a.controlURL).host || a.controlURL;
  } catch {}
  return `${who} — ${server || 'no server yet'}${a.loggedIn || !a.loginName ? '' : ' (logged out)'}`;
}

/** The account in use at the top; its submenu switches to the others, opens its admin console (where it has one)
 *  or the window to add or remove one. */
function accountMenu(accounts: AccountView[]): TrayItem {
  const active = accounts.find((a) => a.active);
  const items: TrayItem[] = accounts.map((a) => ({
    kind: 'account',
    id: a.id,
    label: accountLabel(a),
    active: a.active,
  }));
  items.push({ kind: 'separator' });
  if (active?.adminURL) items.push({ kind: 'action', action: 'admin-console', label: 'Admin console', enabled: true });
  items.push({ kind: 'action', action: 'open', label: 'Add or remove accounts…', enabled: true });
  return { kind: 'submenu', label: active ? `Account: ${accountLabel(active)}` : 'Accounts', items };
}

/** In userspace mode a disabled line says so and where apps find the tailnet: the SOCKS5 proxy, else the HTTP one. */
function userspaceLine(s: AppSnapshot): TrayItem | undefined {
  const n = s.networking;
  if (n?.mode !== 'userspace') return undefined;
  const proxy = n.socks5 ? `proxy ${n.socks5}` : n.httpProxy ? `HTTP proxy ${n.httpProxy}` : 'no proxy running';
  return { kind: 'info', label: `Userspace mode — ${proxy}` };
}

export function trayModel(s: AppSnapshot, unseenFiles = false): TrayModel {
  const items: TrayItem[] = [];
  // A first run's one empty account needs no menu: 'Log in…' is all there is to do.
  const accounts = s.accounts ?? [];
  const firstRun = accounts.length === 1 && !accounts[0]?.loggedIn && !accounts[0]?.loginName;
  if (s.link !== 'none' && s.accounts && accounts.length > 0 && !firstRun) {
    items.push(accountMenu(s.accounts), { kind: 'separator' });
  }
  const loggedIn = s.state === 'Running' || s.state === 'Starting' || (s.state === 'Stopped' && s.self !== undefined);
  if (s.link === 'none') {
    items.push({ kind: 'info', label: s.linkProblem ?? 'No engine is running' });
  } else if (s.state === 'Running' || s.state === 'Starting') {
    items.push({ kind: 'action', action: 'disconnect', label: 'Disconnect', enabled: true });
  } else if (loggedIn) {
    items.push({ kind: 'action', action: 'connect', label: 'Connect', enabled: true });
  }
  const userspace = s.link !== 'none' ? userspaceLine(s) : undefined;
  if (userspace) items.push(userspace);
  if (s.self && s.state === 'Running') {
    const ip = s.self.addresses.find((a) => !a.includes(':')) ?? s.self.addresses[0] ?? '';
    items.push({ kind: 'separator' });
    items.push({ kind: 'copy', label: `This device: ${s.self.name} (${ip})`, text: ip });
    const peers = [...s.peers].sort((a, b) => a.name.localeCompare(b.name));
    const peerItems: TrayItem[] = peers.slice(0, TRAY_PEER_LIMIT).map((p) => {
      const pip = p.addresses.find((a) => !a.includes(':')) ?? p.addresses[0] ?? '';
      const offline = p.online === false ? ' — offline' : '';
      return { kind: 'copy', label: `${p.name} (${pip})${offline}`, text: pip };
    });
    if (peers.length > TRAY_PEER_LIMIT) {
      peerItems.push({ kind: 'info', label: `${peers.length - TRAY_PEER_LIMIT} more in the window` });
    }
    if (peerItems.length === 0) peerItems.push({ kind: 'info', label: 'No other devices' });
    items.push({ kind: 'submenu', label: 'Network devices', items: peerItems });
  }
  const exitMenu = s.link !== 'none' && loggedIn ? exitNodeMenu(s) : undefined;
  if (exitMenu) items.push(exitMenu);
  items.push({ kind: 'separator' });
  if (s.link !== 'none') {
    const loginURL = trayLoginURL(s);
    if (loginURL) {
      // A login started from the tray with the window closed: say what it waits for, and offer the page again.
      items.push({ kind: 'info', label: 'Finish logging in in your browser' });
      items.push({ kind: 'action', action: 'login-page', label: 'Open the login page again', enabled: true });
    } else if (s.state === 'NeedsLogin' || s.state === 'NeedsMachineAuth' || s.state === 'NoState') {
      items.push({
        kind: 'action',
        action: 'login',
        label: s.loggingIn ? 'Logging in…' : 'Log in…',
        enabled: !s.loggingIn,
      });
    } else if (loggedIn) {
      items.push({ kind: 'action', action: 'logout', label: 'Log out', enabled: !s.loggingIn });
    }
  }
  items.push({ kind: 'action', action: 'open', label: 'Open Trellis', enabled: true });
  items.push({ kind: 'action', action: 'quit', label: 'Quit', enabled: true });
  return { icon: trayIcon(s, unseenFiles), tooltip: tooltipFor(s), items };
}
