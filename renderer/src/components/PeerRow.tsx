// One device in the list: status (in words and colour), name, address, OS, path; copy and send actions; a drop
// target for files. Rows have one fixed height: the list is virtual and places them by index.
import type { PeerView } from '../../../preload/api.ts';
import { primaryAddress, relativeTime } from '../lib/format.ts';
import { peerStatus } from '../lib/peer-status.ts';
import { CopyButton } from './CopyButton.tsx';
import { OfferBadges } from './OfferBadges.tsx';
import { PathBadge } from './PathBadge.tsx';
import { SendFilesButton } from './SendFilesButton.tsx';
import { useFileDrop } from './use-file-drop.ts';

export function PeerRow(props: {
  peer: PeerView;
  selected: boolean;
  /** This device is connected: the states shown are current. */
  live: boolean;
  /** 1-based place in the whole (filtered) list, and its length: the list renders only the rows in view. */
  position: number;
  of: number;
  onOpen(): void;
}) {
  const { peer, selected, live, position, of, onOpen } = props;
  const status = peerStatus(peer, live);
  const { dropState, handlers } = useFileDrop(peer, live);
  const ip = primaryAddress(peer.addresses);
  const seen = peer.online === false && peer.lastSeen ? `seen ${relativeTime(peer.lastSeen)}` : '';
  return (
    <li
      className={`peer-row drop-${dropState}${selected ? ' selected' : ''}`}
      data-testid="peer-row"
      data-peer={peer.name}
      data-peer-id={peer.id}
      data-online={String(peer.online)}
      data-file-target={String(peer.fileTarget)}
      aria-posinset={position}
      aria-setsize={of}
      {...handlers}
    >
      {/* The button's own text is its accessible name (state, name, address, OS, path: what the eye reads), so
          what is read aloud and what is seen cannot drift apart. */}
      <button type="button" className="peer-main" onClick={onOpen} aria-describedby="peer-row-hint">
        <span className={`peer-status tone-${status.tone}`} data-testid="peer-status">
          <span className={`dot dot-${status.tone}`} aria-hidden="true" />
          {status.word}
        </span>
        <span className="peer-name">
          {peer.name}
          <OfferBadges peer={peer} />
        </span>
        <span className="mono peer-ip" data-testid="peer-ip">
          {ip ?? ''}
        </span>
        <span className="muted peer-os">{peer.os}</span>
        <span className="peer-path">
          {live && <PathBadge path={peer.path} />}
          {seen && <span className="muted">{seen}</span>}
        </span>
      </button>
      {dropState === 'refuse' && <span className="drop-note">can't receive files</span>}
      {dropState === 'accept' && <span className="drop-note">Drop to send</span>}
      <span className="peer-actions">
        {ip && (
          <CopyButton value={ip} label={`Copy ${peer.name} IP`}>
            IP
          </CopyButton>
        )}
        <CopyButton value={peer.dnsName} label={`Copy ${peer.name} DNS name`}>
          Name
        </CopyButton>
        <SendFilesButton peer={peer} live={live} className="btn btn-small btn-ghost" />
      </span>
    </li>
  );
}
