// The device list with search, a details panel for the selected device, and the active transfers below.
import { useCallback, useMemo } from 'react';
import type { AppSnapshot } from '../../../preload/api.ts';
import { PeerDetails } from '../components/PeerDetails.tsx';
import { PeerRow } from '../components/PeerRow.tsx';
import { Transfers } from '../components/Transfers.tsx';
import { matchesPeer, sortPeers } from '../lib/peer-filter.ts';
import { useStore } from '../store.ts';

export function PeersView({ snapshot }: { snapshot: AppSnapshot }) {
  const search = useStore((s) => s.search);
  const setSearch = useStore((s) => s.setSearch);
  const selectedId = useStore((s) => s.selectedPeer);
  const selectPeer = useStore((s) => s.selectPeer);
  const close = useCallback(() => selectPeer(null), [selectPeer]);

  const sorted = useMemo(() => sortPeers(snapshot.peers), [snapshot.peers]);
  const shown = useMemo(() => sorted.filter((p) => matchesPeer(p, search)), [sorted, search]);
  // Looked up in the current snapshot each time: a peer that left the tailnet closes its panel.
  const selected = snapshot.peers.find((p) => p.id === selectedId);
  const total = snapshot.peers.length;
  const online = snapshot.peers.filter((p) => p.online === true).length;

  return (
    <div className={`peers-layout${selected ? ' with-details' : ''}`}>
      <section className="peers" aria-label="Devices">
        <div className="toolbar">
          <label className="search">
            <span className="visually-hidden">Search devices</span>
            <input
              type="search"
              data-testid="peer-search"
              placeholder="Search by name, address, OS or user"
              value={search}
              onChange={(e) => setSearch(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === 'Escape' && search) {
                  e.stopPropagation();
                  setSearch('');
                }
              }}
            />
          </label>
          <span className="muted count">
            <span data-testid="peer-count">
              {shown.length} of {total}
            </span>
            <span className="count-online"> · {online} online</span>
          </span>
        </div>
        {total === 0 ? (
          <p className="empty" data-testid="peers-empty">
            No other devices in this tailnet yet.
          </p>
        ) : shown.length === 0 ? (
          <p className="empty" data-testid="peers-empty">
            No devices match “{search}”.
          </p>
        ) : (
          <ul className="plain peer-list">
            {shown.map((p) => (
              <PeerRow key={p.id} peer={p} selected={p.id === selectedId} onOpen={() => selectPeer(p.id)} />
            ))}
          </ul>
        )}
        <Transfers transfers={snapshot.transfers} compact />
      </section>
      {selected && <PeerDetails key={selected.id} peer={selected} onClose={close} />}
    </div>
  );
}
