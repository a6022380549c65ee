// "Send files…": the file picker route to Taildrop, for those who do not drag.
import { useRef } from 'react';
import type { PeerView } from '../../../preload/api.ts';
import { peerStatus } from '../lib/peer-status.ts';
import { useSendFiles } from './use-file-drop.ts';

export function SendFilesButton({ peer, live, className }: { peer: PeerView; live: boolean; className?: string }) {
  const input = useRef<HTMLInputElement>(null);
  const send = useSendFiles();
  const { canReceive, why } = peerStatus(peer, live);
  return (
    <>
      <button
        type="button"
        className={className ?? 'btn btn-small'}
        disabled={!canReceive}
        aria-label={`Send files to ${peer.name}`}
        title={canReceive ? `Send files to ${peer.name}` : `${peer.name} can't receive files: ${why}`}
        onClick={() => input.current?.click()}
      >
        Send files…
      </button>
      <input
        ref={input}
        type="file"
        multiple
        hidden
        tabIndex={-1}
        aria-hidden="true"
        onChange={(e) => {
          send(peer, Array.from(e.currentTarget.files ?? []));
          // Cleared so picking the same file again fires another change.
          e.currentTarget.value = '';
        }}
      />
    </>
  );
}
