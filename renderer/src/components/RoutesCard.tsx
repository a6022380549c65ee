// Settings for routes: use the subnets other devices offer, offer this device as an exit node, and the subnets it
// offers, each with whether the tailnet's admin approved it. Each change applies at once; a route typed wrong is
// refused with a sentence next to the field before anything is sent.
import { type FormEvent, useId, useState } from 'react';
import type { AppSnapshot } from '../../../preload/api.ts';
import { checkRoute } from '../../../preload/routes.ts';
import { usePrefList } from './use-pref-list.ts';
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
  const { prefs } = snapshot;
  const [typed, setTyped] = useState('');
  const errorId = useId();
  const approved = new Set(snapshot.routes?.approved ?? []);
  const exitApproved = DEFAULT_ROUTES.every((r) => approved.has(r));

  const routeAll = usePrefToggle(prefs, 'routeAll');
  const offerExit = usePrefToggle(prefs, 'advertiseExitNode');
  // Each change is made to the newest list, not this render's (see use-pref-list.ts).
  const routes = usePrefList(prefs, 'advertiseRoutes');
  const { error, setError } = routes;
  const add = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const checked = checkRoute(typed);
    if ('error' in checked) {
      setError(checked.error);
      return;
    }
    const added = await routes.change((current) =>
      current.includes(checked.route) ? { error: `${checked.route} is offered already.` } : [...current, checked.route],
    );
    if (added) setTyped('');
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
      {routes.list.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <ul className="plain route-list">
          {routes.list.map((r) => (
            <li key={r} className="route-row" data-testid="advertised-route" data-route={r}>
              <span className="mono">{r}</span>
              <Approval approved={approved.has(r)} />
              <button
                type="button"
                className="btn btn-small btn-ghost"
                aria-label={`Remove ${r}`}
                onClick={() => void routes.change((current) => current.filter((x) => x !== r))}
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
          <button type="submit" className="btn btn-small" data-testid="route-add">
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
