// Taildrop file names (docs/protocol/services.md §2.7): what a receiver accepts before writing a byte, and the numbered names
// ("a (1).tar.gz") a conflicting file gets. Stricter than tailscaled where Windows would be hurt: reserved device
// names are refused on every platform, since a file received on Linux may be copied to a Windows machine later.
const FORBIDDEN = /[/\\:*"<>|]/;
// Graphic runes: letters, marks, numbers, punctuation, symbols, and the plain space separator.
const GRAPHIC = /^[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]*$/u;
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
export const MAX_NAME_BYTES = 255;

/** Why `name` is not an acceptable Taildrop file name, or undefined when it is. */
export function invalidNameReason(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..') return 'empty, "." or ".."';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `longer than ${MAX_NAME_BYTES} bytes`;
  if (name.includes('\uFFFD') || !Buffer.from(name, 'utf8').toString('utf8').startsWith(name)) return 'not UTF-8';
  if (name !== name.trim()) return 'leading or trailing white space';
  if (FORBIDDEN.test(name)) return 'a path separator or one of : * " < > |';
  if (!GRAPHIC.test(name)) return 'a control or other non-printing character';
  if (name.endsWith('.partial') || name.endsWith('.deleted')) return 'ends in .partial or .deleted';
  if (WINDOWS_RESERVED.test(name)) return 'a reserved device name on Windows';
  if (name.endsWith('.')) return 'ends in a dot';
  return undefined;
}

/** The name's base and extension as Taildrop splits them: the trailing run of short alphanumeric suffixes. */
export function splitExtension(name: string): { base: string; ext: string } {
  const m = /((?:\.[A-Za-z0-9]{1,6})+)$/.exec(name);
  if (!m || m.index === 0) return { base: name, ext: '' };
  return { base: name.slice(0, m.index), ext: m[1] ?? '' };
}

/** The n-th alternative for a taken name: "Foo.jpg" → "Foo (1).jpg", "a.tar.gz" → "a (2).tar.gz". */
export function numberedName(name: string, n: number): string {
  const { base, ext } = splitExtension(name);
  return `${base} (${n})${ext}`;
}
