// A list preference (advertised routes, port forwards) changed one entry at a time, applying at once. Each change
// is a function of the list as it is now, not of the list this render was drawn from: setPrefs answers with the new
// prefs before main pushes the next snapshot (the controller batches its pushes), so a second click in between
// computed from the render's snapshot would send the old list back — removing two entries quickly brought the first
// back. Changes run one after the other, each on the newest list known: the last reply, or a snapshot that came
// after it. Until the snapshot catches up, the list shown is that newest one too.
import { useCallback, useEffect, useRef, useState } from 'react';
import type { AppPrefs } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { errorMessage } from '../store.ts';

type ListPref = 'advertiseRoutes' | 'forwardPorts';

/** What a change makes of the newest list: the list to send, or a sentence refusing it (nothing is sent). */
export type ListChange = (current: readonly string[]) => string[] | { error: string };

export interface PrefList {
  /** The newest list known (a reply may be newer than the snapshot). */
  list: readonly string[];
  /** The last change's refusal or failure, one sentence ('' = none). */
  error: string;
  setError(text: string): void;
  /** Queues a change; true once it is applied, false if refused or failed (the error says why). */
  change(f: ListChange): Promise<boolean>;
}

export function usePrefList(prefs: AppPrefs, key: ListPref): PrefList {
  const api = useApi();
  const fromSnapshot = prefs[key];
  const newest = useRef<readonly string[]>(fromSnapshot);
  const [shown, setShown] = useState<readonly string[]>(fromSnapshot);
  const [error, setError] = useState('');
  const queue = useRef<Promise<unknown>>(Promise.resolve());

  // A snapshot arriving (a new array) is newer than any reply before it.
  useEffect(() => {
    newest.current = fromSnapshot;
    setShown(fromSnapshot);
  }, [fromSnapshot]);

  const change = useCallback(
    (f: ListChange): Promise<boolean> => {
      const run = async (): Promise<boolean> => {
        try {
          const next = f(newest.current);
          if (!Array.isArray(next)) {
            setError(next.error);
            return false;
          }
          const reply = await api.setPrefs({ [key]: next });
          newest.current = reply[key];
          setShown(reply[key]);
          setError('');
          return true;
        } catch (e) {
          setError(errorMessage(e));
          return false;
        }
      };
      const done = queue.current.then(run);
      queue.current = done;
      return done;
    },
    [api, key],
  );

  return { list: shown, error, setError, change };
}
