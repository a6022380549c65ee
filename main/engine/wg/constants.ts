// Protocol constants (whitepaper §6, wireguard-go device/constants.go).

export enum MessageType {
  Initiation = 1,
  Response = 2,
  CookieReply = 3,
  Transport = 4,
}

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
export const TRANSPORT_HEADER_SIZE = 16;
export const TRANSPORT_MIN_SIZE = 32; // header + empty plaintext's tag: a keepalive
export const PADDING_MULTIPLE = 16;

export const REKEY_AFTER_MESSAGES = 1n << 60n;
export const REJECT_AFTER_MESSAGES = 0xffffffffffffdfffn; // 2^64 - 2^13 - 1

/** Timer lengths in milliseconds. Production code always uses DEFAULT_TIMERS; tests may pass shorter ones. */
export interface WgTimers {
  rekeyAfterTime: number;
  rejectAfterTime: number;
  rekeyAttemptTime: number;
  rekeyTimeout: number;
  rekeyTimeoutJitterMax: number;
  keepaliveTimeout: number;
  cookieRefreshTime: number;
  handshakeInitiationRate: number;
}

export const DEFAULT_TIMERS: Readonly<WgTimers> = Object.freeze({
  rekeyAfterTime: 120_000,
  rejectAfterTime: 180_000,
  rekeyAttemptTime: 90_000,
  rekeyTimeout: 5_000,
  rekeyTimeoutJitterMax: 334,
  keepaliveTimeout: 10_000,
  cookieRefreshTime: 120_000,
  handshakeInitiationRate: 20,
});

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

/** Handshakes queued at or above this count put the device "under load" (cookies required). */
export const UNDER_LOAD_QUEUE = 128;
export const UNDER_LOAD_AFTER = 1_000;
