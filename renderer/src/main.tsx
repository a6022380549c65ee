// Entry: picks the API (Electron's, the web bridge, or the in-memory fake with ?fake=1 for looking at the views),
// binds it to the store and renders the app.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import type { TrellisApi } from '../../preload/api.ts';
import { App } from './App.tsx';
import { ApiContext } from './api/context.ts';
import { getApi } from './api/index.ts';
import { bindApi } from './boot.ts';
import './styles/index.css';

async function start(): Promise<void> {
  const params = new URLSearchParams(location.search);
  let api: TrellisApi;
  if (params.get('fake') === '1') {
    // A separate chunk, fetched only in this dev mode.
    const { createFakeApi } = await import('./dev/fake-api.ts');
    api = createFakeApi(params);
  } else {
    api = getApi();
  }
  bindApi(api);
  const root = document.getElementById('root');
  if (!root) throw new Error('no #root');
  createRoot(root).render(
    <StrictMode>
      <ApiContext value={api}>
        <App />
      </ApiContext>
    </StrictMode>,
  );
}

void start();
