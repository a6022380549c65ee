// A ControllerDelegate that does nothing (the shell's side of the controller), for controller tests; overrides
// record what a test wants to see.
import type { ControllerDelegate } from '../../main/controller/delegate.ts';

export function stubDelegate(overrides: Partial<ControllerDelegate> = {}): ControllerDelegate {
  return {
    capabilities: { shell: 'web', openFiles: false, chooseFolder: false, autostart: false },
    notify: () => {},
    openExternal: async () => {},
    openPath: async () => {},
    revealPath: () => {},
    chooseFolder: async () => null,
    copyText: () => {},
    applyAutostart: () => {},
    ...overrides,
  };
}
