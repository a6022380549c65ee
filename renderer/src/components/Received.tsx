// Files received with Taildrop: open or reveal those in the folder; save those waiting in the inbox (to a picked
// folder, the auto-save folder, or a typed path, depending on what this shell can do).
import { useState } from 'react';
import type { AppSnapshot, ReceivedItem } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { formatBytes, formatDate, relativeTime } from '../lib/format.ts';
import { attempt, useStore } from '../store.ts';

export function Received({ snapshot }: { snapshot: AppSnapshot }) {
  const api = useApi();
  const { received, capabilities, prefs } = snapshot;
  const [typedDir, setTypedDir] = useState('');
  const inbox = received.filter((r) => r.where === 'inbox');
  const needsTypedDir = !capabilities.chooseFolder && !prefs.autoSaveDir;

  // Resolves the folder to save into, or null when the user cancelled or gave none.
  const pickDir = async (): Promise<{ dir?: string } | null> => {
    if (capabilities.chooseFolder) {
      const dir = await attempt(() => api.chooseFolder());
      return dir ? { dir } : null;
    }
    if (prefs.autoSaveDir) return {};
    const dir = typedDir.trim();
    if (!dir) {
      useStore.getState().notify({ level: 'error', message: 'Type the folder to save into first.' });
      return null;
    }
    return { dir };
  };
  const save = async (names?: string[]): Promise<void> => {
    const target = await pickDir();
    if (!target) return;
    const saved = await attempt(() => api.saveReceived({ ...target, ...(names ? { names } : {}) }));
    if (saved) {
      const n = saved.length;
      useStore.getState().notify({ level: 'info', message: `Saved ${n} file${n === 1 ? '' : 's'}` });
    }
  };
  const saveLabel = capabilities.chooseFolder ? 'Save…' : 'Save';

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
      {needsTypedDir && inbox.length > 0 && (
        <label className="field inline-field">
          <span>Save to folder</span>
          <input
            type="text"
            className="mono"
            placeholder="/home/you/Downloads"
            value={typedDir}
            onChange={(e) => setTypedDir(e.currentTarget.value)}
          />
        </label>
      )}
      {!capabilities.chooseFolder && prefs.autoSaveDir && inbox.length > 0 && (
        <p className="muted small">Saving moves files to {prefs.autoSaveDir}.</p>
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
