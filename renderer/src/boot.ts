// Wires an API to the store: pushed snapshots and notices flow in; a fresh snapshot is asked for at start and
// after each reconnect of the bridge (pushes during the gap were lost).
import type { TrellisApi } from '../../preload/api.ts';
import { hasBridgeStatus } from './api/index.ts';
import { askOnFirstUse, showInBrowser } from './lib/browser-notify.ts';
import { errorMessage, useStore } from './store.ts';

export function bindApi(api: TrellisApi): void {
  const store = useStore.getState();
  // Counts pushes, so a getSnapshot answer older than a push that overtook it is not applied.
  let pushes = 0;
  api.on('snapshot', (s) => {
    pushes++;
    useStore.getState().setSnapshot(s);
    askOnFirstUse(s);
  });
  api.on('notice', (n) => useStore.getState().notify(n));
  api.on('notification', (n) => {
    const st = useStore.getState();
    if (n.kind === 'file-received') {
      st.notify({ level: 'info', message: `Received ${n.body}` });
      st.addUnseen(1);
    }
    showInBrowser(n, st.snapshot);
  });

  const refresh = (): void => {
    const at = pushes;
    api.getSnapshot().then(
      (s) => {
        if (pushes === at) useStore.getState().setSnapshot(s);
        askOnFirstUse(s);
      },
      (err: unknown) => useStore.getState().notify({ level: 'error', message: errorMessage(err) }),
    );
  };

  if (hasBridgeStatus(api)) {
    api.onStatus((status) => {
      useStore.getState().setBridge(status);
      if (status === 'open') refresh();
    });
  } else {
    store.setBridge('open');
    refresh();
  }
}
