// How an engine is set up: where its data path lives, its log sink, and test-only knobs.

/** Where the tailnet data path lives: the TUN device's name and the UDP port for WireGuard and disco. */
export interface DataPathSettings {
  tunName: string;
  port: number;
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
