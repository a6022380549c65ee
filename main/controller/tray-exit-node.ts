// The tray's exit node submenu: None, the last used one, the one suggested by measured latency (and the one in use
// when it is neither), allow-LAN access, and the window for the full picker. Also whether traffic goes through an
// exit node now, for the icon and tooltip.
import type { AppSnapshot, PeerView } from '../../preload/api.ts';
import {
  type ExitNodeUse,
  exitNodeChoices,
  exitNodeName,
  exitNodeUse,
  heldReason,
  lastUsedExitNode,
  suggestedExitNode,
} from '../../preload/routes.ts';
import type { TrayItem } from './tray-model.ts';

/** Whether internet traffic goes through an exit node now (or is held), while connected. */
export function usingExitNode(s: AppSnapshot): ExitNodeUse {
  return s.link === 'none' || s.state !== 'Running' ? 'none' : exitNodeUse(s);
}

export function exitNodeTooltip(s: AppSnapshot): string {
  const using = usingExitNode(s);
  if (using === 'active') return `, through exit node ${exitNodeName(s)}`;
  if (using === 'held') return `; ${heldReason(s).replace(/^E/, 'e')}: internet traffic is held`;
  return '';
}

function choice(s: AppSnapshot, p: PeerView, note: string): TrayItem {
  const offline = p.online === false ? ' — offline' : '';
  return {
    kind: 'pref',
    style: 'radio',
    label: `${p.name}${note ? ` (${note})` : ''}${offline}`,
    checked: s.prefs.exitNodeID === p.stableID,
    set: { exitNodeID: p.stableID },
  };
}

/** The submenu, or undefined when no peer offers an exit node and none is chosen. */
export function exitNodeMenu(s: AppSnapshot): TrayItem | undefined {
  const current = s.prefs.exitNodeID;
  const all = exitNodeChoices(s.peers, s.prefs);
  if (all.length === 0 && !current) return undefined;
  const items: TrayItem[] = [
    { kind: 'pref', style: 'radio', label: 'None', checked: current === '', set: { exitNodeID: '' } },
  ];
  const last = lastUsedExitNode(s.peers, s.prefs.lastExitNodeID, current);
  const suggested = suggestedExitNode(s.peers);
  if (last) items.push(choice(s, last, 'last used'));
  if (suggested && suggested !== last) {
    const ms = suggested.path?.latencyMs;
    items.push(choice(s, suggested, `suggested: lowest latency${ms !== undefined ? `, ${Math.round(ms)} ms` : ''}`));
  }
  const inUse = current ? s.peers.find((p) => p.stableID === current) : undefined;
  if (inUse && inUse !== last && inUse !== suggested) items.push(choice(s, inUse, ''));
  if (current && !inUse) {
    items.push({ kind: 'pref', style: 'radio', label: `${exitNodeName(s)} — gone`, checked: true, set: {} });
  }
  const listed = items.length - 1;
  if (all.length === 0) items.push({ kind: 'info', label: 'No device offers an exit node now' });
  if (all.length > listed) items.push({ kind: 'action', action: 'open', label: 'Choose another…', enabled: true });
  items.push({ kind: 'separator' });
  const lan = s.prefs.exitNodeAllowLANAccess;
  items.push({
    kind: 'pref',
    style: 'checkbox',
    label: 'Allow LAN access',
    checked: lan,
    set: { exitNodeAllowLANAccess: !lan },
  });
  const using = usingExitNode(s);
  const label =
    current === ''
      ? 'Exit node: none'
      : `Exit node: ${exitNodeName(s)}${using === 'held' ? ' (internet traffic held)' : ''}`;
  return { kind: 'submenu', label, items };
}
