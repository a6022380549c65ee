// A device's state in words as well as colour, and whether files can go to it now. `live` is false while this
// device is disconnected: what the list shows then is the last known state, not the present one.
import type { PeerView } from '../../../preload/api.ts';

export interface PeerStatus {
  /** Colour of the dot: ok, off, bad, unknown. */
  tone: 'ok' | 'off' | 'bad' | 'unknown';
  /** The state in a word or two, always shown beside the dot. */
  word: string;
  canReceive: boolean;
  /** Why files cannot go to it, as the end of "… can't receive files: ". */
  why?: string;
}

export function peerStatus(p: PeerView, live: boolean): PeerStatus {
  let s: Omit<PeerStatus, 'canReceive' | 'why'>;
  if (!live) s = { tone: 'unknown', word: 'Unknown' };
  else if (p.expired) s = { tone: 'bad', word: 'Key expired' };
  else if (p.online === true) s = { tone: 'ok', word: 'Online' };
  else if (p.online === false) s = { tone: 'off', word: 'Offline' };
  else s = { tone: 'unknown', word: 'Status unknown' };
  const why = !live
    ? 'this device is disconnected'
    : p.expired
      ? 'its key has expired'
      : p.online === false
        ? 'it is offline'
        : !p.fileTarget
          ? 'it does not accept files from this device'
          : undefined;
  return { ...s, canReceive: why === undefined, why };
}
