// A checkbox bound to a boolean preference that applies at once: it shows the new value from the click until the
// snapshot catches up (the round trip to the engine takes a moment; without this the box flicks back first), and
// falls back to the snapshot's value, with a toast, when the change is refused.
import { useEffect, useState } from 'react';
import type { AppPrefs } from '../../../preload/api.ts';
import { useApi } from '../api/context.ts';
import { attempt } from '../store.ts';

type BooleanPref = 'exitNodeAllowLANAccess' | 'routeAll' | 'advertiseExitNode';

export function usePrefToggle(prefs: AppPrefs, key: BooleanPref): { checked: boolean; set(on: boolean): void } {
  const api = useApi();
  const [pending, setPending] = useState<boolean | undefined>(undefined);
  const current = prefs[key];
  useEffect(() => {
    if (pending !== undefined && current === pending) setPending(undefined);
  }, [current, pending]);
  return {
    checked: pending ?? current,
    set: (on) => {
      setPending(on);
      void attempt(() => api.setPrefs({ [key]: on })).then((r) => {
        if (r === undefined) setPending(undefined);
      });
    },
  };
}
