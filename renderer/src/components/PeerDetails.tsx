// Everything known about one device, each value copyable; Escape or Close returns to the list. Also a drop
// target, so files can go to the device being looked at.
import { type ReactNode, useEffect, useRef } from 'react';
import type { PeerView } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { formatBytes, formatDate, relativeTime } from '../lib/format.ts';
import { peerStatus } from '../lib/peer-status.ts';
import { attempt } from '../store.ts';
import { CopyButton } from './CopyButton.tsx';
import { pathText } from './PathBadge.tsx';
import { SendFilesButton } from './SendFilesButton.tsx';
import { useFileDrop } from './use-file-drop.ts';

/** Chooses this device as the exit node, or stops using it. */
function UseAsExitNode({ peer }: { peer: PeerView }) {
  const api = useApi();
  const inUse = peer.exitNode === true;
  return (
    <button
      type="button"
      className="btn"
      data-testid="details-exit-node"
      onClick={() => void attempt(() => api.setPrefs({ exitNodeID: inUse ? '' : peer.stableID }))}
    >
      {inUse ? 'Stop using as exit node' : 'Use as exit node'}
    </button>
  );
}

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

export function PeerDetails({ peer, live, onClose }: { peer: PeerView; live: boolean; onClose(): void }) {
  const { dropState, handlers } = useFileDrop(peer, live);
  const status = peerStatus(peer, live);
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    heading.current?.focus();
  }, []);
  useEffect(() => {
    const onKey = (e: KeyboardEvent): void => {
      if (e.key === 'Escape') onClose();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [onClose]);

  const path = peer.path;
  const handshake = path && path.lastHandshake > 0 ? relativeTime(path.lastHandshake * 1000) : 'never';

  return (
    <aside
      className={`details drop-${dropState}`}
      data-testid="peer-details"
      aria-labelledby="peer-details-title"
      {...handlers}
    >
      <div className="details-head">
        <h2 id="peer-details-title" ref={heading} tabIndex={-1}>
          <span className={`dot dot-${status.tone}`} aria-hidden="true" /> {peer.name}
        </h2>
        <button type="button" className="btn btn-small btn-ghost" onClick={onClose} aria-label="Close details">
          Close
        </button>
      </div>
      {dropState !== 'idle' && (
        <p className="drop-banner">
          {dropState === 'accept' ? `Drop to send to ${peer.name}` : `${peer.name} can't receive files: ${status.why}`}
        </p>
      )}
      <dl className="fields">
        <Field label="Addresses">
          <ul className="plain">
            {peer.addresses.map((a) => (
              <li key={a} className="copy-line">
                <span className="mono">{a}</span>
                <CopyButton value={a} label={`Copy ${a}`} />
              </li>
            ))}
          </ul>
        </Field>
        <Field label="DNS name">
          <span className="copy-line">
            <span className="mono">{peer.dnsName}</span>
            <CopyButton value={peer.dnsName} label={`Copy ${peer.dnsName}`} />
          </span>
        </Field>
        <Field label="OS">{peer.os || '—'}</Field>
        <Field label="User">{peer.user || '—'}</Field>
        <Field label="Status">{live ? status.word : `${status.word} (this device is disconnected)`}</Field>
        {peer.lastSeen && <Field label="Last seen">{formatDate(peer.lastSeen)}</Field>}
        <Field label="Key expiry">
          {peer.expired ? 'Expired' : peer.keyExpiry ? formatDate(peer.keyExpiry) : 'Never'}
        </Field>
        <Field label="Path">{pathText(path) || 'No data path'}</Field>
        {path?.endpoint && (
          <Field label="Endpoint">
            <span className="mono">{path.endpoint}</span>
          </Field>
        )}
        {path?.derpRegion !== undefined && (
          <Field label="DERP region">{path.derpRegionName ?? `Region ${path.derpRegion}`}</Field>
        )}
        {path?.latencyMs !== undefined && <Field label="Latency">{path.latencyMs.toFixed(1)} ms</Field>}
        {path && <Field label="Last handshake">{handshake}</Field>}
        {path && (
          <Field label="Traffic">
            ↓ {formatBytes(path.rxBytes)} · ↑ {formatBytes(path.txBytes)}
          </Field>
        )}
        {peer.exitNodeOption && (
          <Field label="Exit node">
            {peer.exitNode ? 'In use: your internet traffic goes through it' : 'Offers to be an exit node'}
          </Field>
        )}
        {peer.routes.length > 0 && (
          <Field label="Subnet routes">
            <ul className="plain">
              {peer.routes.map((r) => (
                <li key={r} className="mono">
                  {r}
                </li>
              ))}
            </ul>
          </Field>
        )}
        <Field label="Taildrop">{status.canReceive ? 'Can receive files' : `Can't receive files: ${status.why}`}</Field>
      </dl>
      <div className="details-actions">
        <SendFilesButton peer={peer} live={live} className="btn" />
        {peer.exitNodeOption && <UseAsExitNode peer={peer} />}
      </div>
    </aside>
  );
}
