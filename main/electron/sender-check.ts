// Who may talk to main: IPC is accepted only from our own window's top frame showing our own page, and only
// http(s) links leave the app for the user's browser. Pure functions, so the rules are unit-tested under Node.

/** What main knows about the frame that sent an IPC message (Electron's WebFrameMain, reduced). */
export interface SenderFrameInfo {
  url: string;
  /** The top frame of its page (no parent frame). */
  isMainFrame: boolean;
}

/** The URL without query and fragment, or undefined when it does not parse. */
function withoutQueryAndHash(url: string): URL | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  u.search = '';
  u.hash = '';
  return u;
}

/**
 * True only when the sender is the top frame at exactly our renderer's file URL (query and hash ignored: the
 * renderer may route with them). Everything else — another file, a web page, devtools, about:blank, data:,
 * a sub-frame, a frame already gone — is refused.
 */
export function isTrustedSender(frame: SenderFrameInfo | null | undefined, rendererUrl: string): boolean {
  if (!frame?.isMainFrame) return false;
  const sent = withoutQueryAndHash(frame.url);
  const ours = withoutQueryAndHash(rendererUrl);
  if (!sent || !ours) return false;
  if (sent.protocol !== 'file:' || ours.protocol !== 'file:') return false;
  // Hosts matter too: file://host/share/... (a UNC path on Windows) is not our file.
  return sent.href === ours.href;
}

/** http(s) URLs with a host, the only ones opened outside the window (the controller's rule, shared). */
export { isWebUrl as isSafeExternalUrl } from '../controller/views.ts';
