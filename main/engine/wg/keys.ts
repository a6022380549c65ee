// WireGuard keys as users see them: 32 bytes in standard base64.
export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
}

export function parseKey(text: string): Uint8Array {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t))
    throw new KeyFormatError('a key is 32 bytes of base64 (44 characters ending in "=")');
  return new Uint8Array(Buffer.from(t, 'base64'));
}

export function formatKey(key: Uint8Array): string {
  return Buffer.from(key).toString('base64');
}
