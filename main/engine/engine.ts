// PLACEHOLDER (being replaced by the real engine): the minimum EngineApi so transports can be built and tested.
import type { CommandMap, CommandName, EngineApi, EngineEvent, Prefs, StatusSnapshot } from './protocol.ts';
import { EngineError } from './protocol.ts';

export interface EngineOptions {
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export function createEngine(_opts: EngineOptions = {}): EngineApi {
  const listeners = new Set<(e: EngineEvent) => void>();
  let started = false;
  const prefs: Prefs = { controlURL: '', hostname: '', acceptDNS: true, autoConnect: true, wantRunning: false };
  const snapshot = (): StatusSnapshot => ({ state: started ? 'NeedsLogin' : 'NoState', prefs, peers: [], health: [] });
  return {
    async handle<C extends CommandName>(cmd: C, args: CommandMap[C]['args']): Promise<CommandMap[C]['result']> {
      if (cmd === 'start') started = true;
      else if (!started) throw new EngineError('not-started', 'the engine has not been started');
      if (cmd === 'setPrefs') {
        Object.assign(prefs, args);
        return prefs as CommandMap[C]['result'];
      }
      return snapshot() as CommandMap[C]['result'];
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {},
  };
}
