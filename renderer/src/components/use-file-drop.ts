// Makes an element a Taildrop drop target for one peer: highlights while files hover (or says the peer cannot
// receive), and sends what is dropped.
import { type DragEvent, useCallback, useRef, useState } from 'react';
import type { PeerView } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { peerStatus } from '../lib/peer-status.ts';
import { attempt, useStore } from '../store.ts';

export type DropState = 'idle' | 'accept' | 'refuse';

export interface FileDrop {
  dropState: DropState;
  handlers: {
    onDragEnter(e: DragEvent): void;
    onDragOver(e: DragEvent): void;
    onDragLeave(e: DragEvent): void;
    onDrop(e: DragEvent): void;
  };
}

const hasFiles = (e: DragEvent): boolean => Array.from(e.dataTransfer.types).includes('Files');

export function useSendFiles(): (peer: PeerView, files: File[]) => void {
  const api = useApi();
  return useCallback(
    (peer: PeerView, files: File[]) => {
      if (files.length === 0) return;
      const what = files.length === 1 ? files[0].name : `${files.length} files`;
      // An upload row at once: in the browser the bytes travel to the machine before the send can start.
      const total = files.reduce((n, f) => n + f.size, 0);
      const row = useStore.getState().startUpload(peer.name, what, total);
      void attempt(() => api.sendDroppedFiles(peer.name, files, (p) => row.progress(p.loaded))).finally(row.end);
    },
    [api],
  );
}

export function useFileDrop(peer: PeerView, live: boolean): FileDrop {
  const send = useSendFiles();
  const { canReceive, why } = peerStatus(peer, live);
  const [dropState, setDropState] = useState<DropState>('idle');
  // dragenter/dragleave fire for every child crossed; count them to know when the pointer really left.
  const depth = useRef(0);

  const onDragEnter = (e: DragEvent): void => {
    if (!hasFiles(e)) return;
    depth.current++;
    setDropState(canReceive ? 'accept' : 'refuse');
  };
  const onDragOver = (e: DragEvent): void => {
    if (!hasFiles(e)) return;
    // dropEffect 'none' makes the browser refuse the drop (no-drop cursor) on a peer that cannot receive.
    e.preventDefault();
    e.stopPropagation();
    e.dataTransfer.dropEffect = canReceive ? 'copy' : 'none';
  };
  const onDragLeave = (e: DragEvent): void => {
    if (!hasFiles(e)) return;
    depth.current = Math.max(0, depth.current - 1);
    if (depth.current === 0) setDropState('idle');
  };
  const onDrop = (e: DragEvent): void => {
    e.preventDefault();
    e.stopPropagation();
    depth.current = 0;
    setDropState('idle');
    if (!canReceive) {
      if (hasFiles(e)) {
        useStore.getState().notify({ level: 'error', message: `${peer.name} cannot receive files: ${why}.` });
      }
      return;
    }
    send(peer, Array.from(e.dataTransfer.files));
  };
  return { dropState, handlers: { onDragEnter, onDragOver, onDragLeave, onDrop } };
}
