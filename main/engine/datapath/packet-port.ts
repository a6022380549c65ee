// Where the tailnet's packets meet this machine: a TUN device (the OS's TCP/IP stack and every app behind it) or
// the engine's own userspace stack (apps reach the tailnet through its proxies). The data path holds one of them
// behind this interface; TunPort fits it as it is, so the TUN path calls the same methods it always did.
import { TunOpenError, TunPort } from '../tun/tun-port.ts';

export interface PacketPort {
  /** Queues one IP packet from the tailnet (already through the filter); the port owns it from now on. */
  write(pkt: Uint8Array): void;
  /** Hands over what write() queued. */
  flush(): void;
  close(): void;
}

/** 'tun' (default), 'userspace' (the netstack, no privilege), 'auto' (the TUN, else the netstack). */
export type NetworkingMode = 'tun' | 'userspace' | 'auto';

export type TunChoice = { tun: TunPort } | { userspace: true; reason?: string };

/**
 * Opens the TUN the mode asks for. 'auto' falls back to userspace networking only when the TUN needs a privilege
 * we lack (any other failure is a real one and is thrown, as in 'tun' mode), and says why.
 */
export function openTunFor(mode: NetworkingMode, name: string): TunChoice {
  if (mode === 'userspace') return { userspace: true };
  try {
    return { tun: TunPort.open({ name }) };
  } catch (e) {
    if (mode === 'auto' && e instanceof TunOpenError && e.kind === 'privilege') {
      return {
        userspace: true,
        reason: 'a TUN device needs root or CAP_NET_ADMIN, so apps reach the tailnet through the proxies',
      };
    }
    throw e;
  }
}
