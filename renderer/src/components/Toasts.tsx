// Notices from main and from our own actions, newest at the bottom; each closes itself after a few seconds.
import { useStore } from '../store.ts';

export function Toasts() {
  const notices = useStore((s) => s.notices);
  const dismiss = useStore((s) => s.dismiss);
  return (
    <div className="toasts" role="status" aria-live="polite">
      {notices.map((n) => (
        <div key={n.id} className={`toast toast-${n.level}`} data-testid="notice" data-level={n.level}>
          <span>{n.message}</span>
          <button type="button" className="toast-close" aria-label="Dismiss" onClick={() => dismiss(n.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
