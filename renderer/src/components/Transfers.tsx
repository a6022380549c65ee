// Taildrop sends: progress, rate, state, cancel. `compact` lists only the active ones (the strip under the
// device list); the full panel on the Files view also offers to clear finished ones.
import type { Transfer } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { formatBytes, formatRate } from '../lib/format.ts';
import { attempt, type Upload, useStore } from '../store.ts';

export const isActive = (t: Transfer): boolean => t.state === 'queued' || t.state === 'sending';

const STATE_TEXT: Record<Transfer['state'], string> = {
  queued: 'Queued',
  sending: 'Sending',
  done: 'Sent',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

function percent(t: Transfer): number {
  if (t.state === 'done') return 100;
  return t.total > 0 ? Math.min(100, Math.floor((t.sent / t.total) * 100)) : 0;
}

function TransferRow({ t }: { t: Transfer }) {
  const api = useApi();
  const pct = percent(t);
  return (
    <li
      className={`transfer state-${t.state}`}
      data-testid="transfer-row"
      data-name={t.name}
      data-peer={t.peer}
      data-state={t.state}
    >
      <div className="transfer-line">
        <span className="transfer-name" title={t.name}>
          {t.name}
        </span>
        <span className="muted">to {t.peer}</span>
        <span className="transfer-figures muted">
          {pct}%{t.state === 'sending' && t.bytesPerSecond > 0 && ` · ${formatRate(t.bytesPerSecond)}`}
          {t.total > 0 && ` · ${formatBytes(t.total)}`}
        </span>
        <span className={`transfer-state state-text-${t.state}`}>{STATE_TEXT[t.state]}</span>
        {isActive(t) && (
          <button
            type="button"
            className="btn btn-small btn-ghost"
            data-testid="transfer-cancel"
            aria-label={`Cancel ${t.name}`}
            onClick={() => attempt(() => api.cancelTransfer(t.id))}
          >
            Cancel
          </button>
        )}
      </div>
      <div
        className="progress"
        role="progressbar"
        data-testid="transfer-progress"
        aria-valuemin={0}
        aria-valuenow={t.sent}
        aria-valuemax={t.total}
        aria-label={`${t.name} to ${t.peer}`}
      >
        <div className="progress-fill" style={{ width: `${pct}%` }} />
      </div>
      {t.state === 'failed' && t.error && <p className="error-text">{t.error}</p>}
    </li>
  );
}

/** Files dropped in the browser still travelling to the machine: the send starts once they are there. */
function UploadRow({ u }: { u: Upload }) {
  const pct = u.total > 0 ? Math.min(100, Math.floor((u.loaded / u.total) * 100)) : 0;
  return (
    <li className="transfer state-uploading" data-testid="upload-row" data-name={u.name} data-peer={u.peer}>
      <div className="transfer-line">
        <span className="transfer-name" title={u.name}>
          {u.name}
        </span>
        <span className="muted">to {u.peer}</span>
        <span className="transfer-figures muted">
          {pct}%{u.total > 0 && ` · ${formatBytes(u.total)}`}
        </span>
        <span className="transfer-state state-text-sending">Preparing</span>
      </div>
      <div
        className="progress"
        role="progressbar"
        aria-valuemin={0}
        aria-valuenow={u.loaded}
        aria-valuemax={u.total}
        aria-label={`Preparing ${u.name} for ${u.peer}`}
      >
        <div className="progress-fill" style={{ width: `${pct}%` }} />
      </div>
    </li>
  );
}

export function Transfers({ transfers, compact = false }: { transfers: Transfer[]; compact?: boolean }) {
  const api = useApi();
  const uploads = useStore((s) => s.uploads);
  const shown = compact ? transfers.filter(isActive) : transfers;
  const finished = transfers.some((t) => !isActive(t));
  const moving = shown.length + uploads.length;
  if (compact && moving === 0) return null;
  return (
    <section className={compact ? 'transfers transfers-compact' : 'transfers card'} aria-label="Transfers">
      <div className="section-head">
        <h2>{compact ? `Sending ${moving} file${moving === 1 ? '' : 's'}` : 'Transfers'}</h2>
        {!compact && finished && (
          <button type="button" className="btn btn-small" onClick={() => attempt(() => api.clearTransfers())}>
            Clear finished
          </button>
        )}
      </div>
      {moving === 0 ? (
        <p className="empty">Nothing sent yet. Drop files on a device, or use "Send files…".</p>
      ) : (
        <ul className="plain transfer-list">
          {uploads.map((u) => (
            <UploadRow key={`u${u.id}`} u={u} />
          ))}
          {[...shown]
            .sort((a, b) => b.startedAt - a.startedAt)
            .map((t) => (
              <TransferRow key={t.id} t={t} />
            ))}
        </ul>
      )}
    </section>
  );
}
