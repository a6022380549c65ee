// Copy and open done by the browser itself (the `trellis web` page): the bridge's machine may not be the one
// whose clipboard and browser the user is using.
import { ApiError } from '../../../preload/api.ts';

export async function copyInBrowser(text: string): Promise<void> {
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return;
    } catch {
      // Denied (no focus, no permission): fall back to the selection below.
    }
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.append(area);
  area.select();
  // execCommand is deprecated but still the only synchronous fallback where the Clipboard API is blocked.
  const ok = document.execCommand('copy');
  area.remove();
  if (!ok) throw new ApiError('unsupported', 'This browser did not allow copying; select the text and copy it.');
}

export async function openInBrowser(url: string): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ApiError('refused', 'That is not a valid link.');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ApiError('refused', 'Only http and https links are opened.');
  }
  window.open(parsed.href, '_blank', 'noopener');
}
