// The tray and app icons, drawn in code: a rounded tile in the state's colour carrying a white diagonal lattice
// (the trellis), plus a badge for states that need attention. Anti-aliased by supersampling each pixel.
import type { TrayIconState } from '../controller/tray-model.ts';
import type { RgbaImage } from './png.ts';

export type IconKind = TrayIconState | 'app';

export const TRAY_ICON_STATES: readonly TrayIconState[] = [
  'disconnected',
  'connecting',
  'connected',
  'needs-login',
  'file-received',
  'exit-node',
  'exit-node-file-received',
  'exit-node-held',
];

/** Tray sizes: 16 px at scale 1, 32 px for high-density screens. */
export const TRAY_ICON_SIZES = [16, 32] as const;
export const APP_ICON_SIZE = 512;

type Rgb = readonly [number, number, number];

const TILE_COLOURS: Record<IconKind, Rgb> = {
  disconnected: [0x8a, 0x8f, 0x98],
  connecting: [0xf2, 0xa9, 0x1e],
  connected: [0x16, 0xa0, 0x8a],
  'needs-login': [0xf0, 0x6a, 0x1a],
  'file-received': [0x16, 0xa0, 0x8a],
  // Through an exit node the tile turns blue and carries an arrow leaving it; held traffic turns it red.
  'exit-node': [0x2f, 0x5f, 0xd0],
  'exit-node-file-received': [0x2f, 0x5f, 0xd0],
  'exit-node-held': [0xc8, 0x32, 0x32],
  app: [0x16, 0xa0, 0x8a],
};
const WHITE: Rgb = [0xff, 0xff, 0xff];
const FILE_BADGE: Rgb = [0x2d, 0x7f, 0xf9];
const LOGIN_DOT: Rgb = [0xff, 0xff, 0xff];
const BADGE_RING: Rgb = [0x20, 0x22, 0x26];
const EXIT_ARROW: Rgb = [0xff, 0xff, 0xff];

/** Samples per pixel edge: 4×4 gives smooth edges even at 16 px. */
const SUPERSAMPLE = 4;

/** Coordinates are in the unit square, y downwards. */
type Shape = (x: number, y: number) => boolean;

function roundedSquare(inset: number, radius: number): Shape {
  const lo = inset + radius;
  const hi = 1 - inset - radius;
  return (x, y) => {
    const dx = Math.max(lo - x, 0, x - hi);
    const dy = Math.max(lo - y, 0, y - hi);
    return x >= inset && x <= 1 - inset && y >= inset && y <= 1 - inset && dx * dx + dy * dy <= radius * radius;
  };
}

function disc(cx: number, cy: number, r: number): Shape {
  return (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

/** Rising and falling bars, clipped to a frame inside the tile; bars stay at least 1.4 px wide when small. */
function lattice(size: number): Shape {
  const halfWidth = Math.max(0.045, 0.7 / size);
  const half = halfWidth * Math.SQRT2; // measured along x+y (or x−y)
  const rising = [0.7, 1.0, 1.3];
  const falling = [-0.3, 0, 0.3];
  const near = (v: number, lines: number[]) => lines.some((c) => Math.abs(v - c) <= half);
  const frame = roundedSquare(0.2, 0.08);
  return (x, y) => frame(x, y) && (near(x + y, rising) || near(x - y, falling));
}

/** An arrow pointing up and left, out of the tile, inside the top-left badge: traffic leaving elsewhere. */
function exitArrow(size: number): Shape {
  const w = Math.max(0.035, 0.6 / size);
  const inBadge = disc(0.24, 0.24, 0.17);
  // The shaft along x = y, and the head's two strokes along the badge's top and left edges from the tip.
  const tip = 0.15;
  const shaft: Shape = (x, y) => Math.abs(x - y) <= w * Math.SQRT2 && x >= tip && x <= 0.33;
  const top: Shape = (x, y) => Math.abs(y - tip) <= w && x >= tip && x <= tip + 0.13;
  const left: Shape = (x, y) => Math.abs(x - tip) <= w && y >= tip && y <= tip + 0.13;
  return (x, y) => inBadge(x, y) && (shaft(x, y) || top(x, y) || left(x, y));
}

interface Layer {
  shape: Shape;
  colour: Rgb;
}

function layersFor(kind: IconKind, size: number): Layer[] {
  const layers: Layer[] = [
    { shape: roundedSquare(0.03, 0.2), colour: TILE_COLOURS[kind] },
    { shape: lattice(size), colour: WHITE },
  ];
  if (kind === 'exit-node' || kind === 'exit-node-file-received' || kind === 'exit-node-held') {
    layers.push({ shape: disc(0.24, 0.24, 0.22), colour: BADGE_RING });
    layers.push({ shape: exitArrow(size), colour: EXIT_ARROW });
  }
  if (kind === 'file-received' || kind === 'exit-node-file-received') {
    layers.push({ shape: disc(0.78, 0.78, 0.22), colour: BADGE_RING });
    layers.push({ shape: disc(0.78, 0.78, 0.16), colour: FILE_BADGE });
  } else if (kind === 'needs-login') {
    layers.push({ shape: disc(0.78, 0.22, 0.2), colour: BADGE_RING });
    layers.push({ shape: disc(0.78, 0.22, 0.13), colour: LOGIN_DOT });
  }
  return layers;
}

/** Draws the icon for kind at size×size pixels. */
export function drawIcon(kind: IconKind, size: number): RgbaImage {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`bad icon size ${size}`);
  const layers = layersFor(kind, size);
  const data = new Uint8Array(size * size * 4);
  const samples = SUPERSAMPLE * SUPERSAMPLE;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0;
      let g = 0;
      let b = 0;
      let covered = 0;
      for (let sy = 0; sy < SUPERSAMPLE; sy++) {
        for (let sx = 0; sx < SUPERSAMPLE; sx++) {
          const x = (px + (sx + 0.5) / SUPERSAMPLE) / size;
          const y = (py + (sy + 0.5) / SUPERSAMPLE) / size;
          // The topmost layer containing the sample paints it.
          for (let i = layers.length - 1; i >= 0; i--) {
            if (!layers[i].shape(x, y)) continue;
            const [cr, cg, cb] = layers[i].colour;
            r += cr;
            g += cg;
            b += cb;
            covered++;
            break;
          }
        }
      }
      const o = (py * size + px) * 4;
      if (covered === 0) continue;
      // Colour averaged over covered samples only (straight alpha), coverage as alpha.
      data[o] = Math.round(r / covered);
      data[o + 1] = Math.round(g / covered);
      data[o + 2] = Math.round(b / covered);
      data[o + 3] = Math.round((covered / samples) * 255);
    }
  }
  return { width: size, height: size, data };
}
