// The account in use, under the header, with a switcher: every account with its server shown plainly (switch to
// it, open its admin console, remove it) and a form to add one on Tailscale's server or a custom one (Headscale).
import { type FormEvent, useState } from 'react';
import { type AccountView, type AppSnapshot, TAILSCALE_CONTROL_URL } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { attempt } from '../store.ts';
import { chosenControlURL, ErrorText, type FormError, formError, type Server, ServerChoice } from './ServerChoice.tsx';

/** The account's server as a person reads it: its host, or the URL as given. */
export function serverText(controlURL: string): string {
  if (controlURL.replace(/\/+$/, '') === TAILSCALE_CONTROL_URL) return 'Tailscale';
  try {
    return new URL(controlURL).host || controlURL;
  } catch {
    return controlURL || 'no server yet';
  }
}

function who(a: AccountView): string {
  return a.loginName || a.tailnet || 'Not logged in yet';
}

function AddAccountForm({ onDone }: { onDone: () => void }) {
  const api = useApi();
  const [server, setServer] = useState<Server>('custom');
  const [customURL, setCustomURL] = useState('');
  const [authKey, setAuthKey] = useState('');
  const [error, setError] = useState<FormError | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(null);
    const chosen = chosenControlURL(server, customURL);
    if ('error' in chosen) return setError(chosen.error);
    const controlURL = chosen.url;
    const key = authKey.trim();
    setBusy(true);
    try {
      await api.addAccount(key ? { controlURL, authKey: key } : { controlURL });
      onDone();
    } catch (err) {
      setError(formError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="accounts-add" onSubmit={submit} noValidate data-testid="account-add-form">
      <ServerChoice
        legend="Add an account on"
        testIdPrefix="account-add"
        errorPrefix="account-add"
        server={server}
        onServer={setServer}
        customURL={customURL}
        onCustomURL={setCustomURL}
        error={error}
      />
      <label className="field">
        <span>
          Auth key <span className="muted small">(optional — without one, you log in in the browser)</span>
        </span>
        <input
          type="password"
          className="mono"
          data-testid="account-add-key"
          autoComplete="off"
          value={authKey}
          onChange={(e) => setAuthKey(e.currentTarget.value)}
        />
      </label>
      <ErrorText idPrefix="account-add" error={error} field="authKey" />
      <ErrorText idPrefix="account-add" error={error} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" data-testid="account-add-submit" disabled={busy}>
          {busy ? 'Adding…' : 'Add account'}
        </button>
        <button type="button" className="btn btn-ghost" onClick={onDone} disabled={busy}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function AccountItem({ account, busy }: { account: AccountView; busy: boolean }) {
  const api = useApi();
  const [confirm, setConfirm] = useState(false);
  return (
    <li className="accounts-item" data-testid="account-item" data-id={account.id} data-active={account.active}>
      <div className="accounts-who">
        <span>{who(account)}</span>
        <span className="mono muted small" data-testid="account-server" title={account.controlURL}>
          {serverText(account.controlURL)}
          {account.loggedIn || !account.loginName ? '' : ' · logged out'}
        </span>
      </div>
      <div className="accounts-actions">
        {account.adminURL && (
          <button
            type="button"
            className="btn btn-small btn-ghost"
            onClick={() => {
              const url = account.adminURL;
              if (url) void attempt(() => api.openExternal(url));
            }}
          >
            Admin console
          </button>
        )}
        {account.active ? (
          <span className="muted small">In use</span>
        ) : (
          <button
            type="button"
            className="btn btn-small"
            data-testid="account-switch"
            disabled={busy}
            onClick={() => void attempt(() => api.switchAccount(account.id), `Switched to ${who(account)}`)}
          >
            Switch
          </button>
        )}
        {confirm ? (
          <button
            type="button"
            className="btn btn-small btn-danger"
            data-testid="account-remove-confirm"
            disabled={busy}
            onClick={() => void attempt(() => api.removeAccount(account.id), `Removed ${who(account)}`)}
          >
            Log out and remove
          </button>
        ) : (
          <button
            type="button"
            className="btn btn-small btn-ghost"
            data-testid="account-remove"
            disabled={busy}
            onClick={() => setConfirm(true)}
          >
            Remove
          </button>
        )}
      </div>
    </li>
  );
}

export function AccountSwitcher({ snapshot }: { snapshot: AppSnapshot }) {
  const [open, setOpen] = useState(false);
  const [adding, setAdding] = useState(false);
  const accounts = snapshot.accounts;
  if (!accounts || accounts.length === 0 || snapshot.link === 'none') return null;
  // A first run's one empty account: the login view is all there is to say.
  const only = accounts.length === 1 ? accounts[0] : undefined;
  if (only && !only.loggedIn && !only.loginName) return null;
  const active = accounts.find((a) => a.active);
  return (
    <section className="accounts" aria-label="Accounts">
      <div className="accounts-bar">
        <span className="muted small">Account</span>
        <span data-testid="account-current">{active ? who(active) : 'None'}</span>
        {active && (
          <span className="mono muted small" data-testid="account-current-server" title={active.controlURL}>
            {serverText(active.controlURL)}
          </span>
        )}
        <button
          type="button"
          className="btn btn-small btn-ghost accounts-toggle"
          aria-expanded={open}
          data-testid="account-switcher"
          onClick={() => setOpen((v) => !v)}
        >
          {accounts.length > 1 ? `Switch (${accounts.length})` : 'Accounts'}
        </button>
      </div>
      {open && (
        <div className="accounts-panel card" data-testid="account-panel">
          <ul className="accounts-list plain">
            {accounts.map((a) => (
              <AccountItem key={a.id} account={a} busy={snapshot.loggingIn} />
            ))}
          </ul>
          {adding ? (
            <AddAccountForm onDone={() => setAdding(false)} />
          ) : (
            <button type="button" className="btn btn-small" data-testid="account-add" onClick={() => setAdding(true)}>
              Add account…
            </button>
          )}
        </div>
      )}
    </section>
  );
}
