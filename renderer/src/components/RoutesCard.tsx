// Settings for routes: use the subnets other devices offer, offer this device as an exit node, and the subnets it
// offers, each with whether the tailnet's admin approved it. Each change applies at once; a route typed wrong is
// refused with a sentence next to the field before anything is sent.
import { type FormEvent, useId, useState } from 'react';
import type { AppSnapshot } from '../../../preload/api.ts';
import { checkRoute } from '../../../preload/routes.ts';
import { useApi } from '../api/context.ts';
import { errorMessage } from '../store.ts';
import { usePrefToggle } from './use-pref-toggle.ts';

const DEFAULT_ROUTES = ['0.0.0.0/0', '::/0'];

function Approval({ approved }: { approved: boolean }) {
  return approved ? (
    <span className="badge badge-direct" data-testid="route-approval" data-approved="true">
      approved
    </span>
  ) : (
    <span className="badge badge-derp" data-testid="route-approval" data-approved="false">
      waiting for the admin to approve
    </span>
  );
}

export function RoutesCard({ snapshot }: { snapshot: AppSnapshot }) {
  const api = useApi();
  const { prefs } = snapshot;
  const [typed, setTyped] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const errorId = useId();
  const approved = new Set(snapshot.routes?.approved ?? []);
  const exitApproved = DEFAULT_ROUTES.every((r) => approved.has(r));

  const routeAll = usePrefToggle(prefs, 'routeAll');
  const offerExit = usePrefToggle(prefs, 'advertiseExitNode');
  const saveRoutes = async (routes: string[]): Promise<boolean> => {
    setBusy(true);
    try {
      await api.setPrefs({ advertiseRoutes: routes });
      setError('');
      return true;
    } catch (e) {
      setError(errorMessage(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  const add = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const checked = checkRoute(typed);
    if ('error' in checked) {
      setError(checked.error);
      return;
    }
    if (prefs.advertiseRoutes.includes(checked.route)) {
      setError(`${checked.route} is offered already.`);
      return;
    }
    if (await saveRoutes([...prefs.advertiseRoutes, checked.route])) setTyped('');
  };

  return (
    <section className="card routes" aria-labelledby="routes-title" data-testid="routes-card">
      <h2 id="routes-title">Exit node and subnet routes</h2>
      <p className="muted small">Changes here apply at once.</p>
      <label className="check">
        <input
          type="checkbox"
          data-testid="route-all"
          checked={routeAll.checked}
          onChange={(e) => routeAll.set(e.currentTarget.checked)}
        />
        <span>
          Use subnet routes
          <span className="muted small block">Reach the networks other devices offer, like a home or office LAN.</span>
        </span>
      </label>
      <label className="check">
        <input
          type="checkbox"
          data-testid="advertise-exit-node"
          checked={offerExit.checked}
          onChange={(e) => offerExit.set(e.currentTarget.checked)}
        />
        <span>
          Run as exit node
          <span className="muted small block">Other devices may send their internet traffic through this one.</span>
        </span>
      </label>
      {prefs.advertiseExitNode && (
        <p className="route-state">
          Exit node: <Approval approved={exitApproved} />
        </p>
      )}

      <h3 className="subhead">Subnets this device offers</h3>
      {prefs.advertiseRoutes.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <ul className="plain route-list">
          {prefs.advertiseRoutes.map((r) => (
            <li key={r} className="route-row" data-testid="advertised-route" data-route={r}>
              <span className="mono">{r}</span>
              <Approval approved={approved.has(r)} />
              <button
                type="button"
                className="btn btn-small btn-ghost"
                disabled={busy}
                aria-label={`Remove ${r}`}
                onClick={() => void saveRoutes(prefs.advertiseRoutes.filter((x) => x !== r))}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <form className="field" onSubmit={add} noValidate>
        <label htmlFor={`${errorId}-input`}>Offer a subnet</label>
        <span className="input-with-button">
          <input
            id={`${errorId}-input`}
            type="text"
            className="mono"
            data-testid="route-input"
            placeholder="192.168.1.0/24"
            value={typed}
            onChange={(e) => {
              setTyped(e.currentTarget.value);
              setError('');
            }}
            aria-invalid={error !== ''}
            aria-describedby={error ? errorId : undefined}
          />
          <button type="submit" className="btn btn-small" data-testid="route-add" disabled={busy}>
            Add
          </button>
        </span>
        {error && (
          <span className="error-text" role="alert" id={errorId} data-testid="route-error">
            {error}
          </span>
        )}
        <span className="muted small">The tailnet's admin approves each subnet before others can use it.</span>
      </form>
    </section>
  );
}
