// The window: header and banners always; the login view until logged in, then the tabs.
import { useEffect } from 'react';
import type { AppSnapshot } from '../../preload/api.ts';
import { AccountSwitcher } from './components/AccountSwitcher.tsx';
import { Banners } from './components/Banners.tsx';
import { Header } from './components/Header.tsx';
import { Nav } from './components/Nav.tsx';
import { PendingSend } from './components/PendingSend.tsx';
import { Toasts } from './components/Toasts.tsx';
import { isActive } from './components/Transfers.tsx';
import { isLoggedIn } from './lib/format.ts';
import { useStore } from './store.ts';
import { FilesView } from './views/FilesView.tsx';
import { LoginView } from './views/LoginView.tsx';
import { PeersView } from './views/PeersView.tsx';
import { SettingsView } from './views/SettingsView.tsx';

// Files dropped outside a target must not make the window navigate to them.
function useDropGuard(): void {
  useEffect(() => {
    const stop = (e: DragEvent): void => {
      if (!e.dataTransfer?.types.includes('Files')) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'none';
    };
    window.addEventListener('dragover', stop);
    window.addEventListener('drop', stop);
    return () => {
      window.removeEventListener('dragover', stop);
      window.removeEventListener('drop', stop);
    };
  }, []);
}

function Main({ snapshot }: { snapshot: AppSnapshot }) {
  const view = useStore((s) => s.view);
  if (!isLoggedIn(snapshot.state)) {
    if (snapshot.link === 'none') {
      return <p className="empty center">Trellis will show your tailnet once its engine is reachable.</p>;
    }
    return <LoginView snapshot={snapshot} />;
  }
  const active = snapshot.transfers.filter(isActive).length;
  return (
    <>
      <Nav activeTransfers={active} />
      <div className="content">
        {view === 'peers' && <PeersView snapshot={snapshot} />}
        {view === 'files' && <FilesView snapshot={snapshot} />}
        {view === 'settings' && <SettingsView snapshot={snapshot} />}
      </div>
    </>
  );
}

export function App() {
  const snapshot = useStore((s) => s.snapshot);
  const bridge = useStore((s) => s.bridge);
  useDropGuard();

  if (!snapshot) {
    return (
      <div className="app">
        <div className="splash" role="status">
          <span className="spinner" aria-hidden="true" />
          {bridge === 'reconnecting' ? 'Reconnecting to Trellis…' : 'Connecting to Trellis…'}
        </div>
        <Toasts />
      </div>
    );
  }
  return (
    <div className="app">
      <Header snapshot={snapshot} />
      <AccountSwitcher snapshot={snapshot} />
      <Banners snapshot={snapshot} bridge={bridge} />
      <main className="main">
        <Main snapshot={snapshot} />
      </main>
      {snapshot.pendingSend.length > 0 && <PendingSend snapshot={snapshot} />}
      <Toasts />
    </div>
  );
}
