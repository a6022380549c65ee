// What a browser may ask of the machine through the bridge, beyond what the controller checks itself: whoever
// holds the token must not make Trellis read or write a path of their choosing. The browser sends only files it
// uploaded, and never names a folder: received files go to the one `trellis web --save-dir` fixed.
import { type ApiCallName, ApiError } from '../../preload/api.ts';

export interface BrowserPolicy {
  /** Whether a path is a file this page uploaded. */
  isUpload(path: string): boolean;
  /** The folder received files may be saved to (--save-dir); undefined = none, auto-save can only be off. */
  saveDir?: string;
}

/** Throws an ApiError 'refused' for a call the browser may not make; returns for the rest. */
export function checkBrowserCall(policy: BrowserPolicy, name: ApiCallName, arg: unknown): void {
  const a = isRecord(arg) ? arg : undefined;
  if (name === 'sendFiles') {
    const paths = a?.paths;
    if (!Array.isArray(paths)) return; // the backend refuses the malformed call itself
    if (!paths.every((p) => typeof p === 'string' && policy.isUpload(p))) {
      throw new ApiError('refused', 'Only files uploaded through this page can be sent from the browser.');
    }
  } else if (name === 'saveReceived') {
    if (a && 'dir' in a) {
      throw new ApiError('refused', 'The browser cannot choose a folder; files are saved to the one trellis web set.');
    }
  } else if (name === 'setPrefs') {
    if (!a || !('autoSaveDir' in a)) return;
    const dir = a.autoSaveDir;
    if (dir === '' || (policy.saveDir !== undefined && dir === policy.saveDir)) return;
    throw new ApiError(
      'refused',
      policy.saveDir === undefined
        ? 'From the browser, auto-save can only be turned off.'
        : `From the browser, auto-save can only be turned on (to ${policy.saveDir}) or off.`,
    );
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
