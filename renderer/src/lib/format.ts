// Small text formatters for sizes, rates and times.
import type { EngineState } from '../../../preload/api.ts';

export const STATE_LABEL: Record<EngineState, string> = {
  Running: 'Connected',
  Starting: 'Connecting…',
  Stopped: 'Disconnected',
  NeedsLogin: 'Logged out',
  NeedsMachineAuth: 'Waiting for approval',
  NoState: 'Starting engine…',
};

/** Logged in: the connect switch applies and the tabs show. */
export function isLoggedIn(state: EngineState): boolean {
  return state === 'Running' || state === 'Starting' || state === 'Stopped';
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

/** "just now", "5 min ago", "3 h ago", "2 days ago", or a date for older times. */
export function relativeTime(when: string | number, now = Date.now()): string {
  const t = typeof when === 'number' ? when : Date.parse(when);
  if (Number.isNaN(t)) return '';
  const s = Math.round((now - t) / 1000);
  if (s < 0) return 'in the future';
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 30 * 86400) {
    const d = Math.floor(s / 86400);
    return `${d} day${d === 1 ? '' : 's'} ago`;
  }
  return new Date(t).toLocaleDateString();
}

export function formatDate(when: string | number): string {
  const t = typeof when === 'number' ? when : Date.parse(when);
  return Number.isNaN(t) ? '' : new Date(t).toLocaleString();
}

/** First IPv4 address, else the first address at all. */
export function primaryAddress(addresses: readonly string[]): string | undefined {
  return addresses.find((a) => !a.includes(':')) ?? addresses[0];
}

/** A control server URL the user typed: http(s) with a host, or an error sentence. */
export function checkControlURL(input: string): { url: string } | { error: string } {
  const text = input.trim();
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return { error: 'Enter a full URL, like https://headscale.example.com.' };
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    return { error: 'The URL must start with https:// or http://.' };
  if (!u.hostname) return { error: 'The URL needs a host name.' };
  // Keep what the user typed minus a trailing slash, the form control servers are usually written in.
  return { url: text.replace(/\/+$/, '') };
}
