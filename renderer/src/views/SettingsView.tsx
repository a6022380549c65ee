// Preferences. The form holds only the fields the user changed (the rest show the live prefs), and Save sends
// just those; log out asks for a second click instead of a blocking dialog.
import { type FormEvent, useRef, useState } from 'react';
import type { ApiErrorField, AppPrefs, AppSnapshot } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { PortForwardsCard } from '../components/PortForwardsCard.tsx';
import { RoutesCard } from '../components/RoutesCard.tsx';
import { browserCanNotify } from '../lib/browser-notify.ts';
import { checkControlURL, formatDate } from '../lib/format.ts';
import { keyExpiry } from '../lib/key-expiry.ts';
import { attempt, errorMessage, useStore } from '../store.ts';

type Status =
  | { kind: 'idle' }
  | { kind: 'saving' }
  | { kind: 'saved' }
  | { kind: 'error'; message: string; field?: ApiErrorField };

/** An error about one field, under it. */
function FieldError({ status, field }: { status: Status; field: ApiErrorField }) {
  if (status.kind !== 'error' || status.field !== field) return null;
  return (
    <span className="error-text" role="alert" id={`settings-error-${field}`} data-testid="settings-error">
      {status.message}
    </span>
  );
}

export function SettingsView({ snapshot }: { snapshot: AppSnapshot }) {
  const api = useApi();
  const { prefs, capabilities } = snapshot;
  const saveDir = capabilities.saveDir;
  const [draft, setDraft] = useState<Partial<AppPrefs>>({});
  const [status, setStatus] = useState<Status>({ kind: 'idle' });
  const [confirmLogout, setConfirmLogout] = useState(false);
  // Saved prefs as the reply gave them, until the next snapshot (main pushes it a moment after the reply): without
  // this the fields flick back to the old values in between.
  // The reply counts only over the snapshot it came on top of.
  const [replied, setReplied] = useState<{ over: AppPrefs; prefs: AppPrefs } | undefined>(undefined);
  const shownPrefs = useRef(prefs);
  shownPrefs.current = prefs;
  const current = replied?.over === prefs ? replied.prefs : prefs;
  const value = <K extends keyof AppPrefs>(k: K): AppPrefs[K] => draft[k] ?? current[k];
  const edit = <K extends keyof AppPrefs>(k: K, v: AppPrefs[K]): void => {
    setDraft((d) => ({ ...d, [k]: v }));
    setStatus({ kind: 'idle' });
  };
  const dirty = Object.keys(draft).length > 0;
  // The engine knows each account's console (Tailscale's, or one configured with --admin-url).
  const admin = snapshot.accounts?.find((a) => a.active)?.adminURL;
  const expiry = keyExpiry(snapshot.self?.keyExpiry);
  // The browser shows notifications only with its permission; where it refused, the option would do nothing.
  const canNotify = capabilities.shell === 'electron' || browserCanNotify();
  const reauth = (): void => {
    useStore.getState().expectLoginURL();
    void attempt(() => api.login({}));
  };

  const save = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const changes = { ...draft };
    if (changes.controlURL !== undefined && changes.controlURL.trim() !== '') {
      const checked = checkControlURL(changes.controlURL);
      if ('error' in checked) {
        setStatus({ kind: 'error', message: checked.error, field: 'controlURL' });
        requestAnimationFrame(() => document.querySelector<HTMLElement>('.settings [aria-invalid="true"]')?.focus());
        return;
      }
      changes.controlURL = checked.url;
    }
    setStatus({ kind: 'saving' });
    try {
      const saved = await api.setPrefs(changes);
      setReplied({ over: shownPrefs.current, prefs: saved });
      setDraft({});
      setStatus({ kind: 'saved' });
    } catch (err) {
      const field = (err as { field?: ApiErrorField }).field;
      setStatus({ kind: 'error', message: errorMessage(err), field });
      // The field at fault may be scrolled away above Save: go to it.
      if (field)
        requestAnimationFrame(() => document.querySelector<HTMLElement>('.settings [aria-invalid="true"]')?.focus());
    }
  };

  const chooseFolder = async (): Promise<void> => {
    const dir = await attempt(() => api.chooseFolder());
    if (dir) edit('autoSaveDir', dir);
  };

  const check = (
    k: 'acceptDNS' | 'autoConnect' | 'startAtLogin' | 'startHidden' | 'notifications',
    label: string,
    hint?: string,
  ) => (
    <label className="check">
      <input type="checkbox" checked={value(k)} onChange={(e) => edit(k, e.currentTarget.checked)} />
      <span>
        {label}
        {hint && <span className="muted small block">{hint}</span>}
      </span>
    </label>
  );

  const listen = (k: 'socks5Listen' | 'httpProxyListen', label: string, placeholder: string) => (
    <label className="field">
      <span>{label}</span>
      <input
        type="text"
        className="mono"
        data-testid={`pref-${k}`}
        value={value(k)}
        placeholder={placeholder}
        onChange={(e) => edit(k, e.currentTarget.value)}
        aria-invalid={status.kind === 'error' && status.field === k}
        aria-describedby={status.kind === 'error' && status.field === k ? `settings-error-${k}` : undefined}
      />
      <FieldError status={status} field={k} />
    </label>
  );

  return (
    <div className="stack">
      <form className="card settings" onSubmit={save}>
        <h2>Network</h2>
        <label className="field">
          <span>Control server URL</span>
          <input
            type="url"
            className="mono"
            value={value('controlURL')}
            placeholder="https://controlplane.tailscale.com"
            onChange={(e) => edit('controlURL', e.currentTarget.value)}
            aria-invalid={status.kind === 'error' && status.field === 'controlURL'}
          />
          <FieldError status={status} field="controlURL" />
          <span className="muted small">A new server takes effect after you log out and log in again.</span>
        </label>
        <label className="field">
          <span>Device name</span>
          <input
            type="text"
            value={value('hostname')}
            placeholder="This computer's host name"
            onChange={(e) => edit('hostname', e.currentTarget.value)}
            aria-invalid={status.kind === 'error' && status.field === 'hostname'}
          />
          <FieldError status={status} field="hostname" />
        </label>
        {check('acceptDNS', 'Use tailnet DNS (MagicDNS)', 'Resolve device names like laptop.tailnet.ts.net.')}
        {check('autoConnect', 'Connect when Trellis starts')}
        {snapshot.link === 'worker' && (
          <fieldset className="proxy-fields" data-testid="proxy-settings">
            <legend>Proxies in userspace mode</legend>
            <p className="muted small">
              Without a network device apps reach the tailnet through these. Addresses on this computer only (127.0.0.1,
              localhost or [::1]) with a port; empty turns a proxy off. Saving a change restarts the engine (a few
              seconds offline).
            </p>
            {listen('socks5Listen', 'SOCKS5 proxy', '127.0.0.1:1055')}
            {listen('httpProxyListen', 'HTTP proxy', '127.0.0.1:1056')}
          </fieldset>
        )}

        <h2>App</h2>
        {capabilities.autostart && (
          <>
            {check('startAtLogin', 'Start Trellis when I log in')}
            {check('startHidden', 'Start hidden in the tray', 'Only the tray icon appears; open the window from it.')}
          </>
        )}
        {canNotify && check('notifications', 'Show notifications', 'Files received, login needed, key expiring.')}

        {saveDir !== undefined ? (
          // In the browser the folder is trellis web's --save-dir: auto-save is that folder or off, nothing typed.
          <>
            <label className="check">
              <input
                type="checkbox"
                data-testid="auto-save"
                checked={value('autoSaveDir') === saveDir}
                onChange={(e) => edit('autoSaveDir', e.currentTarget.checked ? saveDir : '')}
              />
              <span>
                Save received files automatically to <span className="mono">{saveDir}</span>
                <span className="muted small block">
                  Off: files wait in the inbox until you save them from the Files tab.
                </span>
              </span>
            </label>
            <FieldError status={status} field="autoSaveDir" />
          </>
        ) : (
          <label className="field">
            <span>Save received files to</span>
            <span className="input-with-button">
              <input
                type="text"
                className="mono"
                value={value('autoSaveDir')}
                placeholder="Keep them in the inbox"
                onChange={(e) => edit('autoSaveDir', e.currentTarget.value)}
                aria-invalid={status.kind === 'error' && status.field === 'autoSaveDir'}
              />
              {capabilities.chooseFolder && (
                <button type="button" className="btn btn-small" onClick={chooseFolder}>
                  Choose…
                </button>
              )}
            </span>
            <span className="muted small">Empty: files wait in the inbox until you save them from the Files tab.</span>
            <FieldError status={status} field="autoSaveDir" />
          </label>
        )}

        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={!dirty || status.kind === 'saving'}>
            Save
          </button>
          {dirty && (
            <button type="button" className="btn btn-ghost" onClick={() => setDraft({})}>
              Revert
            </button>
          )}
          <span role="status" className={status.kind === 'error' ? 'error-text' : 'muted'}>
            {status.kind === 'saving' && 'Saving…'}
            {status.kind === 'saved' && 'Saved.'}
            {status.kind === 'error' && !status.field && status.message}
            {status.kind === 'error' && status.field && 'Not saved: see above.'}
          </span>
        </div>
      </form>

      <RoutesCard snapshot={snapshot} />
      <PortForwardsCard snapshot={snapshot} />

      <section className="card account" aria-labelledby="account-title">
        <h2 id="account-title">Account</h2>
        {snapshot.self && (
          <p className="muted">
            Logged in as {snapshot.self.user || 'unknown user'} on {snapshot.domain ?? prefs.controlURL}
          </p>
        )}
        {expiry && snapshot.self?.keyExpiry && (
          <p className={expiry.urgent ? 'warn-text' : 'muted'} data-testid="settings-key-expiry">
            <span title={formatDate(snapshot.self.keyExpiry)}>{expiry.text}.</span>{' '}
            <button type="button" className="btn btn-small" disabled={snapshot.loggingIn} onClick={reauth}>
              Re-authenticate
            </button>
          </p>
        )}
        {admin && (
          <p>
            <a
              href={admin}
              data-testid="admin-console"
              onClick={(e) => {
                e.preventDefault();
                void attempt(() => api.openExternal(admin));
              }}
            >
              Open the admin console
            </a>
          </p>
        )}
        {confirmLogout ? (
          <div className="form-actions">
            <span>Log out of this tailnet? This device disconnects.</span>
            <button type="button" className="btn btn-danger" onClick={() => attempt(() => api.logout())}>
              Log out
            </button>
            <button type="button" className="btn btn-ghost" onClick={() => setConfirmLogout(false)}>
              Cancel
            </button>
          </div>
        ) : (
          <button type="button" className="btn" disabled={snapshot.loggingIn} onClick={() => setConfirmLogout(true)}>
            Log out…
          </button>
        )}
      </section>
    </div>
  );
}
