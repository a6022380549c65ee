// Autostart on Linux desktops: Electron's login-item settings cover only Windows and macOS, so the app writes
// (or removes) an XDG autostart entry, ~/.config/autostart/trellis.desktop, itself.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const AUTOSTART_FILE_NAME = 'trellis.desktop';

/** $XDG_CONFIG_HOME/autostart, ~/.config/autostart when unset or not absolute (as the spec says). */
export function autostartDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const config = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : join(home, '.config');
  return join(config, 'autostart');
}

/**
 * One Exec argument as it is written in the file. Desktop Entry rules: '%' starts a field code, so a literal one
 * is doubled; an argument with other than plain characters is double-quoted with " ` $ \ backslash-escaped;
 * then the value itself is a string in which every backslash is written twice.
 */
export function quoteExecArg(arg: string): string {
  const escaped = arg.replaceAll('%', '%%');
  if (escaped !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  const quoted = `"${escaped.replace(/["`$\\]/g, (c) => `\\${c}`)}"`;
  return quoted.replaceAll('\\', '\\\\');
}

export function autostartEntry(command: readonly string[], hidden: boolean): string {
  const exec = [...command, ...(hidden ? ['--hidden'] : [])].map(quoteExecArg).join(' ');
  return [
    '[Desktop Entry]',
    'Type=Application',
    'Name=Trellis',
    'Comment=Mesh VPN client',
    `Exec=${exec}`,
    'Icon=trellis',
    'Terminal=false',
    'X-GNOME-Autostart-enabled=true',
    '',
  ].join('\n');
}

/** Writes the entry when enabled, removes it otherwise. command: the executable (and, unpackaged, the app). */
export function applyLinuxAutostart(
  enabled: boolean,
  hidden: boolean,
  command: readonly string[],
  dir = autostartDir(),
): void {
  const file = join(dir, AUTOSTART_FILE_NAME);
  if (!enabled) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, autostartEntry(command, hidden), { mode: 0o644 });
}
