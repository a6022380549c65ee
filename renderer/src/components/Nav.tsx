// The three tabs of a logged-in window.
import { useStore, type View } from '../store.ts';

const TABS: { view: View; label: string }[] = [
  { view: 'peers', label: 'Peers' },
  { view: 'files', label: 'Files' },
  { view: 'settings', label: 'Settings' },
];

export function Nav({ activeTransfers }: { activeTransfers: number }) {
  const view = useStore((s) => s.view);
  const setView = useStore((s) => s.setView);
  const unseen = useStore((s) => s.unseenFiles);
  return (
    <nav className="nav" aria-label="Sections">
      {TABS.map((t) => (
        <button
          key={t.view}
          type="button"
          className="nav-tab"
          data-testid={`nav-${t.view}`}
          aria-current={view === t.view ? 'page' : undefined}
          onClick={() => setView(t.view)}
        >
          {t.label}
          {t.view === 'files' && activeTransfers > 0 && <span className="badge">{activeTransfers}</span>}
          {t.view === 'files' && unseen > 0 && (
            <span className="badge badge-new" data-testid="files-unseen">
              {unseen} new
            </span>
          )}
        </button>
      ))}
    </nav>
  );
}
