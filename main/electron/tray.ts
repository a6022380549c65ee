// Renders the controller's TrayModel (main/controller/tray-model.ts) as Electron's Tray and Menu. What the menu
// holds is decided there; this file only draws it and routes clicks back.
import { clipboard, Menu, type NativeImage, nativeImage, Tray } from 'electron';
import type { TrayIconState, TrayModel } from '../controller/tray-model.ts';
import { drawIcon, TRAY_ICON_SIZES } from './icons.ts';
import { encodePng } from './png.ts';
import { menuItem, type TrayHandlers } from './tray-menu.ts';

export type { TrayHandlers };

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
    this.#tray.setContextMenu(
      Menu.buildFromTemplate(model.items.map((i) => menuItem(i, this.#handlers, (text) => clipboard.writeText(text)))),
    );
  }

  destroy(): void {
    if (!this.#tray.isDestroyed()) this.#tray.destroy();
  }
}
