// How an engine is set up: where its data path lives, its log sink, and test-only knobs.

/** Where the tailnet data path lives: the TUN device's name and the UDP port for WireGuard and disco. */
export interface DataPathSettings {
  tunName: string;
  port: number;
  /** 'tun' (default): a TUN device named tunName; 'userspace': the netstack, no privilege needed;
   *  'auto': the TUN, else (no privilege for it) the netstack, with status.networking.reason saying why. */
  networking?: 'tun' | 'userspace' | 'auto';
  /** "host:port" for the SOCKS5 proxy (absent: none). Loopback by default in the app: 127.0.0.1:1055. */
  socks5Listen?: string;
  /** "host:port" for the HTTP proxy (absent: none). Loopback by default in the app: 127.0.0.1:1056. */
  httpProxyListen?: string;
}

export interface EngineOptions {
  /** The data path; absent = control plane only (no TUN, no packets). */
  dataPath?: DataPathSettings;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Test-only: faster reconnects. */
  backoff?: { minMs: number; maxMs: number };
  /** Timeout for each control connection attempt (default 15 s). */
  controlTimeoutMs?: number;
}
