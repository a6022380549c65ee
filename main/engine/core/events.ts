// The engine's outward voice: event listeners, log lines (as events and to an optional sink) and the set of
// health warnings, which is re-announced whenever it changes.
import type { EngineEvent, Health } from '../protocol.ts';

export type LogLevel = 'info' | 'warn' | 'error';

export class EngineEvents {
  private readonly listeners = new Set<(e: EngineEvent) => void>();
  private readonly health = new Map<string, string>();

  constructor(private readonly sink?: (level: LogLevel, message: string) => void) {}

  on(listener: (e: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(e: EngineEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  log(level: LogLevel, message: string): void {
    this.sink?.(level, message);
    this.emit({ type: 'event', event: 'log', level, message });
  }

  /** Sets (message) or clears (undefined) one warning; listeners hear about changes only. */
  setHealth(code: string, message: string | undefined): void {
    const had = this.health.get(code);
    if (message === undefined) this.health.delete(code);
    else this.health.set(code, message);
    if (had !== message) this.emit({ type: 'event', event: 'health', health: this.healthList() });
  }

  healthList(): Health[] {
    return [...this.health].map(([code, message]) => ({ code, message }));
  }
}
