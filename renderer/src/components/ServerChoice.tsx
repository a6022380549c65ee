// The choice of control server — Tailscale's or a custom one (Headscale) with its URL — and a form's error shown
// under the field at fault, the raw error in a "Details" disclosure. Shared by the login view and the form that
// adds an account.
import { type ApiErrorField, TAILSCALE_CONTROL_URL } from '../../../preload/api.ts';
import { checkControlURL } from '../lib/format.ts';
import { errorMessage } from '../store.ts';

export type Server = 'tailscale' | 'custom';

export interface FormError {
  message: string;
  /** The field at fault; none = the form as a whole. */
  field?: ApiErrorField;
  detail?: string;
}

export function formError(err: unknown): FormError {
  const e = err as { field?: ApiErrorField; detail?: string };
  return { message: errorMessage(err), field: e?.field, detail: e?.detail };
}

/** The control URL the choice names, or the sentence for the URL field when a custom one is not usable. */
export function chosenControlURL(server: Server, customURL: string): { url: string } | { error: FormError } {
  if (server === 'tailscale') return { url: TAILSCALE_CONTROL_URL };
  const checked = checkControlURL(customURL);
  return 'error' in checked ? { error: { message: checked.error, field: 'controlURL' } } : { url: checked.url };
}

/** The form's error when it is about field (or about the whole form, field undefined). idPrefix names the form. */
export function ErrorText({
  error,
  field,
  idPrefix,
}: {
  error: FormError | null;
  field?: ApiErrorField;
  idPrefix: string;
}) {
  if (!error || error.field !== field) return null;
  return (
    <div
      className="field-error"
      id={`${idPrefix}-error-${field ?? 'form'}`}
      data-testid={`${idPrefix}-error`}
      data-field={field ?? ''}
    >
      <p className="error-text" role="alert">
        {error.message}
      </p>
      {error.detail && (
        <details className="error-detail">
          <summary>Details</summary>
          <code>{error.detail}</code>
        </details>
      )}
    </div>
  );
}

export function ServerChoice(p: {
  legend: string;
  /** Names the radio group and prefixes its test ids. */
  testIdPrefix: string;
  /** The form's ErrorText prefix (the error's id and test id). */
  errorPrefix: string;
  server: Server;
  onServer: (s: Server) => void;
  customURL: string;
  onCustomURL: (url: string) => void;
  error: FormError | null;
}) {
  const urlAtFault = p.error?.field === 'controlURL';
  return (
    <fieldset className="radio-group">
      <legend>{p.legend}</legend>
      <label className="radio">
        <input
          type="radio"
          name={`${p.testIdPrefix}-server`}
          data-testid={`${p.testIdPrefix}-tailscale`}
          checked={p.server === 'tailscale'}
          onChange={() => p.onServer('tailscale')}
        />
        <span>
          Tailscale <span className="muted small">{TAILSCALE_CONTROL_URL}</span>
        </span>
      </label>
      <label className="radio">
        <input
          type="radio"
          name={`${p.testIdPrefix}-server`}
          data-testid={`${p.testIdPrefix}-custom`}
          checked={p.server === 'custom'}
          onChange={() => p.onServer('custom')}
        />
        <span>Custom (e.g. Headscale)</span>
      </label>
      {p.server === 'custom' && (
        <label className="field">
          <span>Server URL</span>
          <input
            type="url"
            className="mono"
            data-testid={`${p.testIdPrefix}-url`}
            placeholder="https://headscale.example.com"
            value={p.customURL}
            onChange={(e) => p.onCustomURL(e.currentTarget.value)}
            aria-invalid={urlAtFault}
            aria-describedby={urlAtFault ? `${p.errorPrefix}-error-controlURL` : undefined}
            required
          />
        </label>
      )}
      <ErrorText error={p.error} field="controlURL" idPrefix={p.errorPrefix} />
    </fieldset>
  );
}
