// Files handed to the app from outside (command line, a second launch) waiting for the user to pick a peer.
import { useEffect, useRef } from 'react';
import type { AppSnapshot } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { sortPeers } from '../lib/peer-filter.ts';
import { peerStatus } from '../lib/peer-status.ts';
import { attempt } from '../store.ts';

const baseName = (p: string): string => p.split(/[\\/]/).pop() || p;

export function PendingSend({ snapshot }: { snapshot: AppSnapshot }) {
  const api = useApi();
  const dialog = useRef<HTMLDialogElement>(null);
  const paths = snapshot.pendingSend;
  const live = snapshot.state === 'Running';
  const targets = sortPeers(snapshot.peers.filter((p) => peerStatus(p, live).canReceive));

  // A modal <dialog> traps focus and closes on Escape (its cancel event) without extra code.
  // The first device gets focus (else the scrollable list would, which helps no one).
  useEffect(() => {
    const d = dialog.current;
    if (!d || d.open) return;
    d.showModal();
    d.querySelector<HTMLButtonElement>('.target')?.focus();
  }, []);

  const dismiss = (): void => void attempt(() => api.dismissPendingSend());
  const send = async (peer: string): Promise<void> => {
    const ids = await attempt(() => api.sendFiles({ peer, paths }), `Sending to ${peer}`);
    if (ids) await attempt(() => api.dismissPendingSend());
  };
  const n = paths.length;

  return (
    <dialog
      ref={dialog}
      className="dialog"
      data-testid="pending-send"
      aria-labelledby="pending-title"
      onCancel={(e) => {
        e.preventDefault();
        dismiss();
      }}
    >
      <h2 id="pending-title">
        Send {n} file{n === 1 ? '' : 's'} to…
      </h2>
      <ul className="plain pending-files muted small">
        {paths.slice(0, 5).map((p) => (
          <li key={p}>{baseName(p)}</li>
        ))}
        {n > 5 && <li>and {n - 5} more</li>}
      </ul>
      {targets.length === 0 ? (
        <p className="empty">No device can receive files right now.</p>
      ) : (
        <ul className="plain pending-targets">
          {targets.map((p) => (
            <li key={p.id}>
              <button type="button" className="btn target" onClick={() => send(p.name)}>
                <span className={`dot dot-${p.online ? 'ok' : 'off'}`} aria-hidden="true" />
                {p.name}
                <span className="muted small">{p.os}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      <div className="form-actions end">
        <button type="button" className="btn btn-ghost" onClick={dismiss}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}
