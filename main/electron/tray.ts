// Renders the controller's TrayModel (main/controller/tray-model.ts) as Electron's Tray and Menu. What the menu
// holds is decided there; this file only draws it and routes clicks back.
import { clipboard, Menu, type MenuItemConstructorOptions, type NativeImage, nativeImage, Tray } from 'electron';
import type { AppPrefs } from '../../preload/api.ts';
import type { TrayAction, TrayIconState, TrayItem, TrayModel } from '../controller/tray-model.ts';
import { drawIcon, TRAY_ICON_SIZES } from './icons.ts';
import { encodePng } from './png.ts';

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

const imageCache = new Map<TrayIconState, NativeImage>();

/** The state's icon with a 1× (16 px) and a 2× (32 px) representation, drawn once per state. */
function trayImage(state: TrayIconState): NativeImage {
  let image = imageCache.get(state);
  if (!image) {
    image = nativeImage.createEmpty();
    TRAY_ICON_SIZES.forEach((size, i) => {
      image?.addRepresentation({
        scaleFactor: i + 1,
        width: size,
        height: size,
        buffer: encodePng(drawIcon(state, size)),
      });
    });
    imageCache.set(state, image);
  }
  return image;
}

function menuItem(item: TrayItem, handlers: TrayHandlers): MenuItemConstructorOptions {
  switch (item.kind) {
    case 'action':
      return { label: item.label, enabled: item.enabled, click: () => handlers.onAction(item.action) };
    case 'copy':
      return {
        label: item.label,
        click: () => {
          clipboard.writeText(item.text);
          handlers.onCopied?.(item.label, item.text);
        },
      };
    case 'submenu':
      return { label: item.label, submenu: item.items.map((i) => menuItem(i, handlers)) };
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

export class TrayView {
  readonly #tray: Tray;
  readonly #handlers: TrayHandlers;
  /** The model last drawn: snapshots arrive up to ~10 times a second, and rebuilding an unchanged menu makes
   *  it flicker or close under the pointer (Linux app indicators). */
  #drawn = '';
  #icon: TrayIconState;

  constructor(model: TrayModel, handlers: TrayHandlers) {
    this.#handlers = handlers;
    this.#icon = model.icon;
    this.#tray = new Tray(trayImage(model.icon));
    // Windows users expect a left click to open the window; macOS opens the menu on click, and on Linux the
    // menu is the only interaction app indicators reliably deliver.
    if (process.platform === 'win32') this.#tray.on('click', () => handlers.onAction('open'));
    this.render(model);
  }

  render(model: TrayModel): void {
    const key = JSON.stringify(model);
    if (key === this.#drawn || this.#tray.isDestroyed()) return;
    this.#drawn = key;
    if (this.#icon !== model.icon) this.#tray.setImage(trayImage(model.icon));
    this.#icon = model.icon;
    this.#tray.setToolTip(model.tooltip);
    this.#tray.setContextMenu(Menu.buildFromTemplate(model.items.map((i) => menuItem(i, this.#handlers))));
  }

  destroy(): void {
    if (!this.#tray.isDestroyed()) this.#tray.destroy();
  }
}
