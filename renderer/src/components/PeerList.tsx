// The device list, virtual: only the rows in view (plus a few) are in the DOM, placed by index in a scroll box of
// the whole list's height, so 2,000 devices cost what 30 do. Rows have a fixed height (--row-height in CSS).
import { useEffect, useRef, useState } from 'react';
import type { PeerView } from '../../../preload/api.ts';
import { PeerRow } from './PeerRow.tsx';

export const ROW_HEIGHT = 46;
const OVERSCAN = 6;

export function PeerList(props: {
  peers: readonly PeerView[];
  selectedId: number | null;
  live: boolean;
  onOpen(id: number): void;
}) {
  const { peers, selectedId, live, onOpen } = props;
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    setHeight(el.clientHeight);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const n = peers.length;
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(n, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  const shown = peers.slice(first, last);

  return (
    <div
      ref={box}
      className={`peer-scroll${live ? '' : ' stale'}`}
      data-testid="peer-list"
      data-live={String(live)}
      onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
    >
      <span id="peer-row-hint" hidden>
        Opens the device's details
      </span>
      <ul
        className="plain peer-list"
        aria-label="Devices"
        style={{ paddingTop: first * ROW_HEIGHT, paddingBottom: (n - last) * ROW_HEIGHT }}
      >
        {shown.map((p, i) => (
          <PeerRow
            key={p.id}
            peer={p}
            live={live}
            position={first + i + 1}
            of={n}
            selected={p.id === selectedId}
            onOpen={() => onOpen(p.id)}
          />
        ))}
      </ul>
    </div>
  );
}
