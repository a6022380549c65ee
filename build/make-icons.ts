// Writes the icons electron-builder and the tray use into build/icons/ (gitignored: they are drawn by
// main/electron/icons.ts, never committed). Run: node --import tsx build/make-icons.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { APP_ICON_SIZE, drawIcon, TRAY_ICON_SIZES, TRAY_ICON_STATES } from '../main/electron/icons.ts';
import { encodePng } from '../main/electron/png.ts';

const outDir = fileURLToPath(new URL('./icons/', import.meta.url));
mkdirSync(join(outDir, 'tray'), { recursive: true });

const written: string[] = [];
function write(name: string, png: Buffer): void {
  writeFileSync(join(outDir, name), png);
  written.push(name);
}

// electron-builder derives .ico, .icns and the Linux icon set from one 512×512 icon.png; the tray PNGs are
// only for looking at (the app draws its tray icons in memory).
write('icon.png', encodePng(drawIcon('app', APP_ICON_SIZE)));

for (const state of TRAY_ICON_STATES) {
  for (const size of TRAY_ICON_SIZES) write(`tray/${state}-${size}.png`, encodePng(drawIcon(state, size)));
}
console.log(`wrote ${written.length} icons to ${outDir}`);
