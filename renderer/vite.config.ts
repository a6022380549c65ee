// Builds the window UI. `base: './'` makes asset URLs relative, so Electron can load dist/index.html from file://
// and `trellis web` can serve the same files from any path.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: './',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('./dist', import.meta.url)),
    emptyOutDir: true,
    // Electron 45 and any browser that runs `trellis web` are recent; no legacy transforms needed.
    target: 'es2022',
  },
  server: { host: '127.0.0.1' },
});
