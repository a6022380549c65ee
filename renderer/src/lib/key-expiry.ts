// This device's key expiry, in words, and whether it needs the user's attention yet.
import { relativeTime } from './format.ts';

const SOON_MS = 14 * 86_400_000;

export interface KeyExpiry {
  text: string;
  /** Expired, or expiring within two weeks: worth showing in the header with "Re-authenticate". */
  urgent: boolean;
  expired: boolean;
}

export function keyExpiry(iso: string | undefined, now = Date.now()): KeyExpiry | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  if (Number.isNaN(t) || t <= 0 || new Date(t).getUTCFullYear() < 2000) return undefined;
  const left = t - now;
  if (left <= 0) return { text: `Key expired ${relativeTime(t, now)}`, urgent: true, expired: true };
  const days = Math.floor(left / 86_400_000);
  const hours = Math.max(1, Math.round(left / 3_600_000));
  const inWords = days >= 2 ? `in ${days} days` : `in ${hours} h`;
  return { text: `Key expires ${inWords}`, urgent: left < SOON_MS, expired: false };
}
