// Logging in: Tailscale's control server or a custom one (Headscale), interactive or with an auth key. The login
// URL is shown as text as well as opened, because OIDC and /register flows on Headscale need it.
import { type FormEvent, useState } from 'react';
import { type AppSnapshot, TAILSCALE_CONTROL_URL } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { CopyButton } from '../components/CopyButton.tsx';
import { checkControlURL } from '../lib/format.ts';
import { attempt, errorMessage } from '../store.ts';

type Server = 'tailscale' | 'custom';

function initialServer(url: string): { server: Server; custom: string } {
  const isCustom = url !== '' && url.replace(/\/+$/, '') !== TAILSCALE_CONTROL_URL;
  return { server: isCustom ? 'custom' : 'tailscale', custom: isCustom ? url : '' };
}

export function LoginView({ snapshot }: { snapshot: AppSnapshot }) {
  const api = useApi();
  // The form is the user's draft; it starts from the saved control URL and is not overwritten by later pushes.
  const [initial] = useState(() => initialServer(snapshot.prefs.controlURL));
  const [server, setServer] = useState<Server>(initial.server);
  const [customURL, setCustomURL] = useState(initial.custom);
  const [authKey, setAuthKey] = useState('');
  const [showKey, setShowKey] = useState(false);
  const [error, setError] = useState('');
  const [submitting, setSubmitting] = useState(false);
  const busy = submitting || snapshot.loggingIn;
  const noEngine = snapshot.link === 'none';

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError('');
    let controlURL = TAILSCALE_CONTROL_URL;
    if (server === 'custom') {
      const checked = checkControlURL(customURL);
      if ('error' in checked) {
        setError(checked.error);
        return;
      }
      controlURL = checked.url;
    }
    const key = authKey.trim();
    setSubmitting(true);
    try {
      await api.login(key ? { controlURL, authKey: key } : { controlURL });
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setSubmitting(false);
    }
  };

  return (
    <div className="login" data-testid="login-view">
      <form className="card login-card" onSubmit={submit} noValidate>
        <h1>Log in to your tailnet</h1>
        {snapshot.state === 'NeedsMachineAuth' && (
          <p className="note">This device is waiting for an administrator to approve it in the admin console.</p>
        )}
        {snapshot.reason && <p className="note">{snapshot.reason}</p>}

        <fieldset className="radio-group">
          <legend>Control server</legend>
          <label className="radio">
            <input
              type="radio"
              name="server"
              data-testid="control-tailscale"
              checked={server === 'tailscale'}
              onChange={() => setServer('tailscale')}
            />
            <span>
              Tailscale <span className="muted small">{TAILSCALE_CONTROL_URL}</span>
            </span>
          </label>
          <label className="radio">
            <input
              type="radio"
              name="server"
              data-testid="control-custom"
              checked={server === 'custom'}
              onChange={() => setServer('custom')}
            />
            <span>Custom (e.g. Headscale)</span>
          </label>
          {server === 'custom' && (
            <label className="field">
              <span>Server URL</span>
              <input
                type="url"
                className="mono"
                data-testid="control-url"
                placeholder="https://headscale.example.com"
                value={customURL}
                onChange={(e) => setCustomURL(e.currentTarget.value)}
                aria-invalid={error !== '' && server === 'custom'}
                required
              />
            </label>
          )}
        </fieldset>

        <label className="field">
          <span>
            Auth key <span className="muted small">(optional — without one, you log in in the browser)</span>
          </span>
          <span className="input-with-button">
            <input
              type={showKey ? 'text' : 'password'}
              className="mono"
              data-testid="auth-key"
              autoComplete="off"
              spellCheck={false}
              value={authKey}
              onChange={(e) => setAuthKey(e.currentTarget.value)}
            />
            <button
              type="button"
              className="btn btn-small btn-ghost"
              aria-pressed={showKey}
              onClick={() => setShowKey((v) => !v)}
            >
              {showKey ? 'Hide' : 'Show'}
            </button>
          </span>
        </label>

        {error && (
          <p className="error-text" role="alert" data-testid="login-error">
            {error}
          </p>
        )}

        <div className="form-actions">
          <button type="submit" className="btn btn-primary" data-testid="login-submit" disabled={busy || noEngine}>
            {busy ? 'Logging in…' : 'Log in'}
          </button>
          {busy && <span className="spinner" aria-hidden="true" />}
        </div>

        {snapshot.authURL && (
          <div className="auth-url">
            <p>Finish logging in at this address:</p>
            <code data-testid="auth-url">{snapshot.authURL}</code>
            <div className="form-actions">
              <button
                type="button"
                className="btn btn-primary"
                onClick={() => {
                  const url = snapshot.authURL;
                  if (url) void attempt(() => api.openExternal(url));
                }}
              >
                Open in browser
              </button>
              <CopyButton value={snapshot.authURL} label="Copy login URL" />
            </div>
          </div>
        )}
      </form>
    </div>
  );
}
