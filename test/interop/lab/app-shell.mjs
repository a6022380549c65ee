// The desktop app's main side without Electron, as an unprivileged user: `node app-shell.mjs UID:GID SOCKET`.
// The code is loaded as root (a checkout need not be readable by that user), then the process takes the user's
// uid and gid with no supplementary groups — a setuid from root clears every capability — and opens the engine
// link exactly as main/electron/main.ts does: a daemon at SOCKET if one answers, else its own engine in 'auto'
// networking with the proxies from the app's prefs file. The window is served as `trellis web` serves it (the
// controller behind the web bridge), on 127.0.0.1 of the namespace it runs in; it prints the URL line trellis web
// prints. HOME and XDG_* come from the environment (a test's temporary home, owned by that user).
import { register } from 'tsx/esm/api';

register();
const [ids = '', socketPath = ''] = process.argv.slice(2);
const [uid, gid] = ids.split(':').map(Number);
if (!Number.isInteger(uid) || !Number.isInteger(gid) || socketPath === '') {
  process.stderr.write('usage: node app-shell.mjs UID:GID SOCKET\n');
  process.exit(2);
}
const { join } = await import('node:path');
const { openAppEngineLink } = await import('../../../main/controller/engine-link.ts');
const { AppController } = await import('../../../main/controller/app-controller.ts');
const { STATIC_DIR, webDelegate, defaultSaveDir, prepareSaveDir } = await import('../../../main/cli/web.ts');
const { startWebServer } = await import('../../../main/web/server.ts');
// The worker engine's modules load later, in its thread, as that user: the test checks they are readable to it.
process.setgroups([]);
process.setgid(gid);
process.setuid(uid);

const config = join(process.env.XDG_CONFIG_HOME ?? join(process.env.HOME ?? '/nonexistent', '.config'), 'trellis-app');
const linkOptions = {
  socketPath,
  stateDir: join(config, 'engine'),
  prefsPath: join(config, 'app-prefs.json'),
  tunName: 'trellis0',
};
const saveDir = defaultSaveDir();
await prepareSaveDir(saveDir);
const link = await openAppEngineLink(linkOptions);
process.stdout.write(`engine link: ${link.kind}${link.problem ? ` (${link.problem})` : ''}\n`);
const controller = await AppController.open({
  delegate: webDelegate(saveDir),
  link,
  prefsPath: linkOptions.prefsPath,
  reopen: () => openAppEngineLink(linkOptions),
  saveDir,
});
const server = await startWebServer({ backend: controller, port: 0, staticDir: STATIC_DIR, saveDir });
process.stdout.write(`Trellis web UI: ${server.url}\n`);

const stop = async () => {
  await server.close();
  await controller.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
