// Runs one `trellis` command as another user: `node run-as.mjs UID:GID:GROUP,... <trellis args>`. The code is
// loaded first, as root (a checkout need not be readable by that user), then the process takes the user's uid,
// gid and supplementary groups before the command runs — so every file, folder and socket the command opens is
// opened as that user, as when the user runs trellis.
import { register } from 'tsx/esm/api';

register();
const [ids = '', ...args] = process.argv.slice(2);
const [uid, gid, groups = ''] = ids.split(':');
const { runTrellis } = await import('../../../main/cli/main.ts');
process.setgroups(groups === '' ? [] : groups.split(',').map(Number));
process.setgid(Number(gid));
process.setuid(Number(uid));
process.exitCode = await runTrellis(args);
