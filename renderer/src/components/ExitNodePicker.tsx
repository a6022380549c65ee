// The exit node in use above the device list, and the picker to choose one: search, "None", the last used one
// first, one suggested by measured latency (Headscale suggests none), offline ones marked; and allow-LAN access.
// Choosing applies at once; a refusal is said next to the list.
import { useEffect, useId, useMemo, useRef, useState } from 'react';
import type { AppSnapshot, PeerView } from '../../../preload/api.ts';
import {
  type ExitNodeChoice,
  exitNodeChoices,
  exitNodeName,
  exitNodeUse,
  heldReason,
} from '../../../preload/routes.ts';
import { useApi } from '../api/context.ts';
import { matchesPeer } from '../lib/peer-filter.ts';
import { errorMessage } from '../store.ts';
import { usePrefToggle } from './use-pref-toggle.ts';

/** Options rendered at once; a search narrows the rest (a tailnet may have hundreds of exit nodes). */
const SHOWN_LIMIT = 100;

function notes(c: ExitNodeChoice): string[] {
  const n: string[] = [];
  if (c.peer.exitNode) n.push('in use');
  if (c.lastUsed) n.push('last used');
  const ms = c.peer.path?.latencyMs;
  if (c.suggested) n.push(`suggested: lowest latency${ms !== undefined ? `, ${Math.round(ms)} ms` : ''}`);
  if (c.peer.online === false) n.push('offline');
  else if (c.peer.online === null) n.push('status unknown');
  return n;
}

function Option(props: { choice?: ExitNodeChoice; checked: boolean; onChoose(p?: PeerView): void }) {
  const { choice, checked, onChoose } = props;
  const peer = choice?.peer;
  const n = choice ? notes(choice) : [];
  // A button per choice, not radio inputs: arrow keys in a radio group would choose (and route all traffic
  // through) every device they pass on the way to the wanted one.
  return (
    <li>
      <button
        type="button"
        className={`exit-option${peer?.online === false ? ' offline' : ''}`}
        data-testid={peer ? 'exit-option' : 'exit-none'}
        data-peer={peer?.name}
        aria-pressed={checked}
        onClick={() => onChoose(peer)}
      >
        <span className={`exit-mark${checked ? ' on' : ''}`} aria-hidden="true" />
        <span>
          {peer ? peer.name : 'None'}
          {peer ? (
            n.length > 0 && <span className="muted small"> — {n.join(', ')}</span>
          ) : (
            <span className="muted small"> — internet traffic goes out directly</span>
          )}
        </span>
      </button>
    </li>
  );
}

export function ExitNodePicker({ snapshot, onClose }: { snapshot: AppSnapshot; onClose(): void }) {
  const api = useApi();
  const [query, setQuery] = useState('');
  const [error, setError] = useState('');
  const errorId = useId();
  const searchBox = useRef<HTMLInputElement>(null);
  useEffect(() => searchBox.current?.focus(), []);
  const { prefs } = snapshot;
  const choices = useMemo(() => exitNodeChoices(snapshot.peers, prefs), [snapshot.peers, prefs]);
  const matching = choices.filter((c) => matchesPeer(c.peer, query));
  const choose = async (p?: PeerView): Promise<void> => {
    setError('');
    try {
      await api.setPrefs({ exitNodeID: p?.stableID ?? '' });
      onClose();
    } catch (e) {
      setError(errorMessage(e));
    }
  };
  return (
    <section className="card exit-picker" data-testid="exit-node-picker" aria-label="Choose an exit node">
      <div className="exit-picker-head">
        <label className="search">
          <span className="visually-hidden">Search exit nodes</span>
          <input
            ref={searchBox}
            type="search"
            data-testid="exit-search"
            placeholder="Search exit nodes"
            value={query}
            onChange={(e) => setQuery(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === 'Escape') {
                e.stopPropagation();
                if (query) setQuery('');
                else onClose();
              }
            }}
          />
        </label>
        <button type="button" className="btn btn-small btn-ghost" onClick={onClose}>
          Close
        </button>
      </div>
      <fieldset className="radio-group" aria-describedby={error ? errorId : undefined}>
        <legend className="visually-hidden">Exit nodes</legend>
        <ul className="plain exit-options">
          {!query && <Option checked={prefs.exitNodeID === ''} onChoose={() => void choose()} />}
          {matching.slice(0, SHOWN_LIMIT).map((c) => (
            <Option key={c.peer.id} choice={c} checked={prefs.exitNodeID === c.peer.stableID} onChoose={choose} />
          ))}
        </ul>
      </fieldset>
      {choices.length === 0 && <p className="muted">No device in this tailnet offers to be an exit node.</p>}
      {choices.length > 0 && matching.length === 0 && <p className="muted">No exit node matches “{query}”.</p>}
      {matching.length > SHOWN_LIMIT && (
        <p className="muted small">{matching.length - SHOWN_LIMIT} more: search to narrow the list.</p>
      )}
      {error && (
        <p className="error-text" role="alert" id={errorId} data-testid="exit-error">
          {error}
        </p>
      )}
    </section>
  );
}

/** The exit node line above the device list (absent when no device offers one and none is chosen). */
export function ExitNodeBar({ snapshot }: { snapshot: AppSnapshot }) {
  const [open, setOpen] = useState(false);
  const chooseButton = useRef<HTMLButtonElement>(null);
  const lan = usePrefToggle(snapshot.prefs, 'exitNodeAllowLANAccess');
  const offered = snapshot.peers.some((p) => p.exitNodeOption);
  const use = exitNodeUse(snapshot);
  if (!offered && !snapshot.prefs.exitNodeID) return null;
  const name = exitNodeName(snapshot);
  return (
    <div className="exit-node-area">
      <div className={`exit-node-bar exit-${use}`} data-testid="exit-node-bar">
        <span data-testid="exit-node-current" data-state={use} data-name={use === 'none' ? '' : name}>
          {use === 'none' && (
            <>
              <strong>Exit node:</strong> none <span className="muted">— internet traffic goes out directly.</span>
            </>
          )}
          {use === 'active' && (
            <>
              <strong>Exit node:</strong> {name} <span className="muted">— internet traffic goes through it.</span>
            </>
          )}
          {use === 'held' && (
            <>
              <strong>{heldReason(snapshot)}:</strong> internet traffic is held until it is back or you choose another.
            </>
          )}
        </span>
        <label className="check inline">
          <input
            type="checkbox"
            data-testid="exit-lan"
            checked={lan.checked}
            onChange={(e) => lan.set(e.currentTarget.checked)}
          />
          Allow LAN access
        </label>
        <button
          type="button"
          className="btn btn-small"
          ref={chooseButton}
          data-testid="exit-node-choose"
          aria-expanded={open}
          onClick={() => setOpen(!open)}
        >
          {use === 'none' ? 'Choose exit node…' : 'Change…'}
        </button>
      </div>
      {open && (
        <ExitNodePicker
          snapshot={snapshot}
          onClose={() => {
            setOpen(false);
            // Focus goes back to the button that opened the picker, not to <body>.
            requestAnimationFrame(() => chooseButton.current?.focus());
          }}
        />
      )}
    </div>
  );
}
