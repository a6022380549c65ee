// `trellis web` shows notifications with the browser's Notification API (Electron shows its own from main).
// Permission is asked on the user's first click in the page: browsers ignore a request made without one.
import type { AppNotification, AppSnapshot } from '../../../preload/api.ts';

function supported(): boolean {
  return typeof Notification !== 'undefined';
}

/** Whether this browser can show notifications at all (else Settings does not offer them). */
export function browserCanNotify(): boolean {
  return supported() && Notification.permission !== 'denied';
}

let asked = false;

/** Asks for permission once, on the next click, when the user wants notifications and the browser has not said. */
export function askOnFirstUse(snapshot: AppSnapshot): void {
  if (asked || !supported() || snapshot.capabilities.shell !== 'web' || !snapshot.prefs.notifications) return;
  if (Notification.permission !== 'default') return;
  asked = true;
  const ask = (): void => {
    void Notification.requestPermission().catch(() => {});
  };
  window.addEventListener('click', ask, { once: true, capture: true });
}

export function showInBrowser(n: AppNotification, snapshot: AppSnapshot | null): void {
  if (snapshot?.capabilities.shell !== 'web' || !snapshot.prefs.notifications) return;
  if (!supported() || Notification.permission !== 'granted') return;
  try {
    new Notification(n.title, { body: n.body, tag: n.kind });
  } catch {
    // Some browsers allow notifications only from a service worker; the toast still shows.
  }
}
