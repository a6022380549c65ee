// The tray model's items as Electron menu templates, and where their clicks go. Only types come from Electron, so
// what a click does is unit-tested without it.
import type { MenuItemConstructorOptions } from 'electron';
import type { AppPrefs } from '../../preload/api.ts';
import type { TrayAction, TrayItem } from '../controller/tray-model.ts';

export interface TrayHandlers {
  /** A menu action (connect … quit), or 'open' for a left click on Windows. */
  onAction(action: TrayAction): void;
  /** An account item: switch to it. */
  onSwitchAccount?(id: string): void;
  /** A 'pref' item (exit node, LAN access): set these preferences. */
  onSetPrefs?(prefs: Partial<AppPrefs>): void;
  /** After a 'copy' item put text on the clipboard (the shell may confirm it with a notification). */
  onCopied?(label: string, text: string): void;
}

/** One tray item as Electron's menu template; writeText puts text on the clipboard. */
export function menuItem(
  item: TrayItem,
  handlers: TrayHandlers,
  writeText: (text: string) => void,
): MenuItemConstructorOptions {
  switch (item.kind) {
    case 'action':
      return { label: item.label, enabled: item.enabled, click: () => handlers.onAction(item.action) };
    case 'copy':
      return {
        label: item.label,
        click: () => {
          writeText(item.text);
          handlers.onCopied?.(item.label, item.text);
        },
      };
    case 'submenu':
      return { label: item.label, submenu: item.items.map((i) => menuItem(i, handlers, writeText)) };
    case 'account':
      return {
        label: item.label,
        type: 'radio',
        checked: item.active,
        click: () => {
          if (!item.active) handlers.onSwitchAccount?.(item.id);
        },
      };
    case 'pref':
      return {
        label: item.label,
        type: item.style,
        checked: item.checked,
        click: () => {
          if (Object.keys(item.set).length > 0 && !(item.style === 'radio' && item.checked)) {
            handlers.onSetPrefs?.(item.set);
          }
        },
      };
    case 'info':
      return { label: item.label, enabled: false };
    case 'separator':
      return { type: 'separator' };
  }
}
