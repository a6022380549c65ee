// The device list with search and filters (kept in view above the list), a details panel for the selected
// device, and the active transfers pinned below. While disconnected the list is greyed and says so.
import { useCallback, useMemo } from 'react';
import type { AppSnapshot } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { ExitNodeBar } from '../components/ExitNodePicker.tsx';
import { PeerDetails } from '../components/PeerDetails.tsx';
import { PeerList } from '../components/PeerList.tsx';
import { Transfers } from '../components/Transfers.tsx';
import { UserspaceNotice } from '../components/UserspaceNotice.tsx';
import { matchesPeer, passesFilters, sortPeers } from '../lib/peer-filter.ts';
import { attempt, useStore } from '../store.ts';

export function PeersView({ snapshot }: { snapshot: AppSnapshot }) {
  const api = useApi();
  const search = useStore((s) => s.search);
  const setSearch = useStore((s) => s.setSearch);
  const filters = useStore((s) => s.filters);
  const setFilters = useStore((s) => s.setFilters);
  const selectedId = useStore((s) => s.selectedPeer);
  const selectPeer = useStore((s) => s.selectPeer);
  // Focus goes back to the row the details were opened from (if it is still rendered), not to <body>.
  const close = useCallback(() => {
    const id = useStore.getState().selectedPeer;
    selectPeer(null);
    requestAnimationFrame(() =>
      document.querySelector<HTMLElement>(`[data-peer-id="${id}"] .peer-main`)?.focus({ preventScroll: false }),
    );
  }, [selectPeer]);

  const live = snapshot.state === 'Running';
  const sorted = useMemo(() => sortPeers(snapshot.peers), [snapshot.peers]);
  const shown = useMemo(
    () => sorted.filter((p) => matchesPeer(p, search) && passesFilters(p, filters)),
    [sorted, search, filters],
  );
  // Looked up in the current snapshot each time: a peer that left the tailnet closes its panel.
  const selected = snapshot.peers.find((p) => p.id === selectedId);
  const total = snapshot.peers.length;
  const online = snapshot.peers.filter((p) => p.online === true).length;
  const filtered = search !== '' || filters.online || filters.canReceive;

  return (
    <div className={`peers-layout${selected ? ' with-details' : ''}`}>
      <section className="peers" aria-label="Devices">
        <UserspaceNotice networking={snapshot.networking} />
        <ExitNodeBar snapshot={snapshot} />
        <div className="toolbar">
          <label className="search">
            <span className="visually-hidden">Search devices</span>
            <input
              type="search"
              data-testid="peer-search"
              placeholder="Search by name, address, OS, user, exit node or route"
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
          <label className="filter">
            <input
              type="checkbox"
              data-testid="filter-online"
              checked={filters.online}
              onChange={(e) => setFilters({ online: e.currentTarget.checked })}
            />
            Online
          </label>
          <label className="filter">
            <input
              type="checkbox"
              data-testid="filter-can-receive"
              checked={filters.canReceive}
              onChange={(e) => setFilters({ canReceive: e.currentTarget.checked })}
            />
            Can receive files
          </label>
          <span className="muted count">
            <span data-testid="peer-count">
              {shown.length} of {total}
            </span>
            {live && <span className="count-online"> · {online} online</span>}
          </span>
        </div>
        {!live && (
          <div className="disconnected" data-testid="disconnected-prompt">
            <span>
              {snapshot.state === 'Starting' ? 'Connecting…' : 'Disconnected'}
              <span className="muted"> — devices show their last known details.</span>
            </span>
            {snapshot.state === 'Stopped' && (
              <button type="button" className="btn btn-small btn-primary" onClick={() => attempt(() => api.connect())}>
                Connect
              </button>
            )}
          </div>
        )}
        {total === 0 ? (
          <p className="empty" data-testid="peers-empty">
            No other devices in this tailnet yet.
          </p>
        ) : shown.length === 0 ? (
          <p className="empty" data-testid="peers-empty">
            {search ? `No devices match “${search}”.` : filtered ? 'No devices match the filters.' : ''}
          </p>
        ) : (
          <PeerList peers={shown} selectedId={selectedId} live={live} onOpen={selectPeer} />
        )}
        <Transfers transfers={snapshot.transfers} compact />
      </section>
      {selected && <PeerDetails key={selected.id} peer={selected} live={live} onClose={close} />}
    </div>
  );
}
