// Logging in: Tailscale's control server or a custom one (Headscale), interactive or with an auth key. The login
// URL comes first once there is one: opened in the browser at once, and shown as text too, because OIDC and
// /register flows on Headscale need it. A failure is one sentence under the field at fault, the raw error below.
import { type FormEvent, useEffect, useState } from 'react';
import { type ApiErrorField, type AppSnapshot, TAILSCALE_CONTROL_URL } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { CopyButton } from '../components/CopyButton.tsx';
import {
  chosenControlURL,
  ErrorText,
  type FormError,
  formError,
  type Server,
  ServerChoice,
} from '../components/ServerChoice.tsx';
import { attempt, useStore } from '../store.ts';

// The engine's own reasons for NeedsLogin after a failed attempt are developer text the form already explains.
const TECHNICAL_REASON = /^(login failed|control server refused|waiting for the login)/i;

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
  const [error, setError] = useState<FormError | null>(null);
  const [submitting, setSubmitting] = useState(false);
  const authURL = snapshot.authURL;
  const busy = submitting || snapshot.loggingIn;
  const noEngine = snapshot.link === 'none';
  const awaitingURL = useStore((s) => s.awaitingLoginURL);

  // The login this window asked for: its URL goes to the browser once, without another click. (The desktop
  // app's main side opens it itself, for logins from the tray too.)
  const isWeb = snapshot.capabilities.shell === 'web';
  useEffect(() => {
    if (!authURL || !awaitingURL || !isWeb) return;
    useStore.getState().loginURLOpened();
    void attempt(() => api.openExternal(authURL));
  }, [authURL, awaitingURL, isWeb, api]);

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(null);
    const chosen = chosenControlURL(server, customURL);
    if ('error' in chosen) {
      setError(chosen.error);
      return;
    }
    const controlURL = chosen.url;
    const key = authKey.trim();
    setSubmitting(true);
    if (!key) useStore.getState().expectLoginURL();
    try {
      await api.login(key ? { controlURL, authKey: key } : { controlURL });
    } catch (err) {
      useStore.getState().loginURLOpened();
      setError(formError(err));
    } finally {
      setSubmitting(false);
    }
  };
  // Editing the field at fault clears its error: the sentence was about what was there.
  const edited = (field: ApiErrorField): void => {
    if (error && (error.field === field || !error.field)) setError(null);
  };
  const reason = snapshot.reason && !TECHNICAL_REASON.test(snapshot.reason) && !error ? snapshot.reason : '';

  return (
    <div className="login" data-testid="login-view">
      <form className="card login-card" onSubmit={submit} noValidate>
        <h1>Log in to your tailnet</h1>
        {authURL && (
          <div className="auth-url" data-testid="auth-url-box">
            <p>Finish logging in at this address, in your browser:</p>
            <code data-testid="auth-url">{authURL}</code>
            <div className="form-actions">
              <button
                type="button"
                className="btn btn-primary"
                onClick={() => void attempt(() => api.openExternal(authURL))}
              >
                Open in browser
              </button>
              <CopyButton value={authURL} label="Copy login URL" />
              <button
                type="button"
                className="btn btn-ghost"
                data-testid="login-cancel"
                onClick={() => void attempt(() => api.cancelLogin())}
              >
                Cancel
              </button>
            </div>
          </div>
        )}
        {snapshot.state === 'NeedsMachineAuth' && (
          <p className="note">This device is waiting for an administrator to approve it in the admin console.</p>
        )}
        {reason && <p className="note">{reason}</p>}

        <ServerChoice
          legend="Control server"
          testIdPrefix="control"
          errorPrefix="login"
          server={server}
          onServer={setServer}
          customURL={customURL}
          onCustomURL={(url) => {
            setCustomURL(url);
            edited('controlURL');
          }}
          error={error}
        />

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
              onChange={(e) => {
                setAuthKey(e.currentTarget.value);
                edited('authKey');
              }}
              aria-invalid={error?.field === 'authKey'}
              aria-describedby={error?.field === 'authKey' ? 'login-error-authKey' : undefined}
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
        <ErrorText idPrefix="login" error={error} field="authKey" />
        <ErrorText idPrefix="login" error={error} />

        <div className="form-actions">
          <button
            type="submit"
            className="btn btn-primary"
            data-testid="login-submit"
            disabled={busy || noEngine || authURL !== undefined}
          >
            {busy ? 'Logging in…' : 'Log in'}
          </button>
          {busy && <span className="spinner" aria-hidden="true" />}
        </div>
      </form>
    </div>
  );
}
