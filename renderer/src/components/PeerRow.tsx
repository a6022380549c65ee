// One device in the list: status, name, address, OS, path; copy and send actions; a drop target for files.
import type { PeerView } from '../../../preload/api.ts';
import { primaryAddress, relativeTime } from '../lib/format.ts';
import { CopyButton } from './CopyButton.tsx';
import { PathBadge } from './PathBadge.tsx';
import { SendFilesButton } from './SendFilesButton.tsx';
import { useFileDrop } from './use-file-drop.ts';

export function onlineTone(online: boolean | null): string {
  return online === true ? 'ok' : online === false ? 'off' : 'unknown';
}

export function PeerRow({ peer, selected, onOpen }: { peer: PeerView; selected: boolean; onOpen(): void }) {
  const { dropState, handlers } = useFileDrop(peer);
  const ip = primaryAddress(peer.addresses);
  return (
    <li
      className={`peer-row drop-${dropState}${selected ? ' selected' : ''}`}
      data-testid="peer-row"
      data-peer={peer.name}
      data-online={String(peer.online)}
      data-file-target={String(peer.fileTarget)}
      {...handlers}
    >
      <button type="button" className="peer-main" onClick={onOpen} aria-label={`${peer.name} details`}>
        <span className={`dot dot-${onlineTone(peer.online)}`} aria-hidden="true" />
        <span className="peer-name">
          {peer.name}
          {peer.expired && <span className="badge badge-bad">key expired</span>}
        </span>
        <span className="mono peer-ip" data-testid="peer-ip">
          {ip ?? ''}
        </span>
        <span className="muted peer-os">{peer.os}</span>
        <span className="peer-path">
          <PathBadge path={peer.path} />
          {peer.online === false && (
            <span className="muted">{peer.lastSeen ? `seen ${relativeTime(peer.lastSeen)}` : 'offline'}</span>
          )}
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
        <SendFilesButton peer={peer} className="btn btn-small btn-ghost" />
      </span>
    </li>
  );
}
