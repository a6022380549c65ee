// Components reach the API through context, so the dev fake (or a test double) can stand in for the real one.
import { createContext, useContext } from 'react';
import type { TrellisApi } from '../../../preload/api.ts';

export const ApiContext = createContext<TrellisApi | null>(null);

export function useApi(): TrellisApi {
  const api = useContext(ApiContext);
  if (!api) throw new Error('useApi outside ApiContext');
  return api;
}
