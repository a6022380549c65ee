// Files received with Taildrop: open or reveal those in the folder; save those waiting in the inbox — to a folder
// picked in the desktop's own dialog, or, in the browser, to the one folder `trellis web` was given (the page never
// names a folder itself).
import type { AppSnapshot, ReceivedItem } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { formatBytes, formatDate, relativeTime } from '../lib/format.ts';
import { attempt, useStore } from '../store.ts';

export function Received({ snapshot }: { snapshot: AppSnapshot }) {
  const api = useApi();
  const { received, capabilities, prefs } = snapshot;
  const inbox = received.filter((r) => r.where === 'inbox');
  // Where Save puts files without asking: trellis web's folder, else the auto-save folder.
  const fixedDir = capabilities.saveDir ?? (capabilities.chooseFolder ? undefined : prefs.autoSaveDir || undefined);

  // Resolves the folder to save into ({} = the main side's own), or null when the user cancelled.
  const pickDir = async (): Promise<{ dir?: string } | null> => {
    if (capabilities.saveDir || !capabilities.chooseFolder) return {};
    const dir = await attempt(() => api.chooseFolder());
    return dir ? { dir } : null;
  };
  const save = async (names?: string[]): Promise<void> => {
    const target = await pickDir();
    if (!target) return;
    const saved = await attempt(() => api.saveReceived({ ...target, ...(names ? { names } : {}) }));
    if (saved) {
      const n = saved.length;
      const where = fixedDir ? ` to ${fixedDir}` : '';
      useStore.getState().notify({ level: 'info', message: `Saved ${n} file${n === 1 ? '' : 's'}${where}` });
    }
  };
  const saveLabel = capabilities.chooseFolder && !capabilities.saveDir ? 'Save…' : 'Save';

  return (
    <section className="card" aria-labelledby="received-title">
      <div className="section-head">
        <h2 id="received-title">Received</h2>
        {inbox.length > 0 && (
          <button type="button" className="btn btn-small" onClick={() => save()}>
            Save all
          </button>
        )}
      </div>
      {fixedDir && inbox.length > 0 && (
        <p className="muted small" data-testid="save-dir-note">
          Saving moves files to <span className="mono">{fixedDir}</span>.
        </p>
      )}
      {received.length === 0 ? (
        <p className="empty" data-testid="received-empty">
          No files received yet. Files sent to this device with Taildrop appear here.
        </p>
      ) : (
        <ul className="plain received-list">
          {[...received]
            .sort((a, b) => b.modified - a.modified)
            .map((r) => (
              <ReceivedRow
                key={`${r.where}:${r.name}`}
                item={r}
                snapshot={snapshot}
                saveLabel={saveLabel}
                onSave={save}
              />
            ))}
        </ul>
      )}
    </section>
  );
}

function ReceivedRow(props: {
  item: ReceivedItem;
  snapshot: AppSnapshot;
  saveLabel: string;
  onSave(names: string[]): Promise<void>;
}) {
  const { item, snapshot, saveLabel, onSave } = props;
  const api = useApi();
  const path = item.path;
  return (
    <li className="received-row" data-testid="received-row" data-name={item.name} data-where={item.where}>
      <div className="received-info">
        <span className="received-name" title={item.name}>
          {item.name}
        </span>
        <span className="muted small">
          {formatBytes(item.size)} · <time title={formatDate(item.modified)}>{relativeTime(item.modified)}</time>
          {item.from && ` · from ${item.from}`}
          {item.where === 'inbox' && ' · waiting in inbox'}
        </span>
      </div>
      <span className="row-actions">
        {item.where === 'folder' && path && snapshot.capabilities.openFiles && (
          <>
            <button type="button" className="btn btn-small" onClick={() => attempt(() => api.openReceived(path))}>
              Open
            </button>
            <button
              type="button"
              className="btn btn-small btn-ghost"
              onClick={() => attempt(() => api.revealReceived(path))}
            >
              Show in folder
            </button>
          </>
        )}
        {item.where === 'inbox' && (
          <button type="button" className="btn btn-small" onClick={() => onSave([item.name])}>
            {saveLabel}
          </button>
        )}
      </span>
    </li>
  );
}
