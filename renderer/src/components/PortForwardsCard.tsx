// Settings: services on this computer that tailnet peers may reach (issue 15, item 3). In userspace mode nothing
// from the tailnet reaches this computer's listeners by itself, so the user names ports (the pref forwardPorts) and
// the engine passes each connection to that port on 127.0.0.1. With a network device the peers reach the
// listeners directly: the card says so instead of offering something that would do nothing. The two fields are
// checked with the engine's own parser (main/shared/forward-ports.ts) before anything is sent; a refusal from the
// engine shows its sentence in the same place.
import { type FormEvent, useId, useState } from 'react';
import { addForward, parseForwardPorts, removeForward } from '../../../main/shared/forward-ports.ts';
import type { AppSnapshot } from '../../../preload/api.ts';
import { usePrefList } from './use-pref-list.ts';

function forwardsOf(list: readonly string[]): { tailnetPort: number; localPort: number }[] {
  try {
    return parseForwardPorts(list);
  } catch {
    return []; // the engine keeps only valid lists; nothing to show for one it would refuse
  }
}

/** A labelled port number field; the card has two. */
function PortField(p: {
  id: string;
  label: string;
  testId: string;
  placeholder: string;
  value: string;
  onChange: (value: string) => void;
  invalid: boolean;
  describedBy: string | undefined;
}) {
  return (
    <>
      <label htmlFor={p.id}>{p.label}</label>
      <input
        id={p.id}
        type="text"
        inputMode="numeric"
        className="mono port-input"
        data-testid={p.testId}
        placeholder={p.placeholder}
        value={p.value}
        onChange={(e) => p.onChange(e.currentTarget.value)}
        aria-invalid={p.invalid}
        aria-describedby={p.describedBy}
      />
    </>
  );
}

export function PortForwardsCard({ snapshot }: { snapshot: AppSnapshot }) {
  const mode = snapshot.networking?.mode;
  const forwards = usePrefList(snapshot.prefs, 'forwardPorts');
  const [tailnet, setTailnet] = useState('');
  const [local, setLocal] = useState('');
  const [fault, setFault] = useState<'tailnet' | 'local' | undefined>(undefined);
  const id = useId();
  const errorId = `${id}-error`;
  if (mode === undefined) return null; // no engine status yet: which mode is not known

  const { error } = forwards;
  const shown = forwardsOf(forwards.list);
  const userspace = mode === 'userspace';
  const clearError = (): void => {
    forwards.setError('');
    setFault(undefined);
  };
  const add = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const added = await forwards.change((current) => {
      const r = addForward(current, tailnet, local);
      // Set with the sentence (same tick), so the field is marked when the sentence appears; a refusal from the
      // engine is about the entry as a whole, shown at the tailnet port.
      setFault('error' in r ? r.field : 'tailnet');
      return 'error' in r ? { error: r.error } : r.forwardPorts;
    });
    if (added) {
      setTailnet('');
      setLocal('');
    }
  };
  const invalid = (f: 'tailnet' | 'local') => error !== '' && fault === f;

  return (
    <section className="card forwards" aria-labelledby={`${id}-title`} data-testid="forwards-card" data-mode={mode}>
      <h2 id={`${id}-title`}>Services on this computer</h2>
      {userspace ? (
        <p className="muted small" data-testid="forwards-meaning">
          Trellis runs without a network device, so devices in your tailnet reach a service on this computer only
          through a port listed here. Devices the tailnet's policy allows can connect to the tailnet port; Trellis
          passes each connection to the local port on this computer's loopback (127.0.0.1). Changes apply at once.
        </p>
      ) : (
        <p className="muted small" data-testid="forwards-not-needed">
          Not needed now: Trellis has a network device, so devices in your tailnet reach the services on this computer
          directly, as the tailnet's policy allows.
          {shown.length > 0 && ' The ports below are used only when Trellis runs in userspace mode.'}
        </p>
      )}

      {(userspace || shown.length > 0) && (
        <>
          <h3 className="subhead">Forwarded ports</h3>
          {shown.length === 0 ? (
            <p className="muted" data-testid="forwards-none">
              None.
            </p>
          ) : (
            <ul className="plain route-list">
              {shown.map((f) => (
                <li
                  key={f.tailnetPort}
                  className="route-row"
                  data-testid="forward-row"
                  data-tailnet-port={f.tailnetPort}
                  data-local-port={f.localPort}
                >
                  <span>
                    Port <span className="mono">{f.tailnetPort}</span> → this computer's{' '}
                    <span className="mono">{f.localPort}</span>
                  </span>
                  <button
                    type="button"
                    className="btn btn-small btn-ghost"
                    aria-label={`Remove port ${f.tailnetPort}`}
                    onClick={() => {
                      clearError();
                      void forwards.change((current) => removeForward(current, f.tailnetPort));
                    }}
                  >
                    Remove
                  </button>
                </li>
              ))}
            </ul>
          )}
        </>
      )}

      {userspace && (
        <form className="field" onSubmit={add} noValidate aria-label="Forward a port">
          <div className="input-with-button forward-fields">
            <PortField
              id={`${id}-tailnet`}
              label="Tailnet port"
              testId="forward-tailnet-port"
              placeholder="8080"
              value={tailnet}
              onChange={(v) => {
                setTailnet(v);
                clearError();
              }}
              invalid={invalid('tailnet')}
              describedBy={invalid('tailnet') ? errorId : undefined}
            />
            <PortField
              id={`${id}-local`}
              label="to local port"
              testId="forward-local-port"
              placeholder="same"
              value={local}
              onChange={(v) => {
                setLocal(v);
                clearError();
              }}
              invalid={invalid('local')}
              describedBy={invalid('local') ? errorId : `${id}-hint`}
            />
            <button type="submit" className="btn btn-small" data-testid="forward-add">
              Add
            </button>
          </div>
          {error && (
            <span className="error-text" role="alert" id={errorId} data-testid="forward-error">
              {error}
            </span>
          )}
          <span className="muted small" id={`${id}-hint`}>
            Leave the local port empty to use the same number on this computer.
          </span>
        </form>
      )}
      {!userspace && error && (
        <span className="error-text" role="alert" data-testid="forward-error">
          {error}
        </span>
      )}
    </section>
  );
}
