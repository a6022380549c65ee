// Entry point of the `trellis` command: dispatches verbs.
import { runDaemon } from './daemon.ts';
import { runDiagnose } from './diagnose.ts';
import { runFile } from './file.ts';
import { runProfiles } from './profiles.ts';
import { runExitNode, runSet } from './routes.ts';
import { runTailnet } from './tailnet.ts';
import { runWeb } from './web.ts';
import { runWg } from './wg.ts';

const USAGE = `usage: trellis <command> [args]

commands:
  daemon --state-dir DIR [--socket PATH] [--tun NAME|off|userspace-networking] [--port UDP_PORT]
         [--socks5-server ADDR] [--outbound-http-proxy-listen ADDR]
                                    run the engine as a service on a local socket (foreground); with
                                    userspace-networking no TUN and no root: apps use the proxies
  up [--login-server URL] [--auth-key file:PATH|-] [--hostname NAME] [--timeout SECONDS]
                                    connect to the tailnet, logging in if needed
  set [--exit-node=NAME|IP] [--exit-node-allow-lan-access=BOOL] [--accept-routes=BOOL]
      [--advertise-exit-node=BOOL] [--advertise-routes=CIDR,...] [--forward-ports=PORT[=LOCAL],...]
                                    change the exit node, LAN access, routes, port forwards
  exit-node list [--json]           the peers offering an exit node
  down                              disconnect from the tailnet (stay logged in)
  logout                            disconnect and log out of the account in use
  login [--login-server URL] [--auth-key file:PATH|-] [--hostname NAME]
                                    add an account (its own server and login) and switch to it
  switch --list | ID|NAME | --remove ID|NAME
                                    list the accounts, change to another, or remove one
  status [--json]                   show this node and its peers, with each peer's path
  ping <peer> [--count N]           disco ping: direct or via DERP, endpoint, latency
  netcheck [--json]                 UDP, public endpoint, NAT kind, DERP region latencies
  file cp <file>... <peer>:         send files with Taildrop (progress on a terminal)
  file get [--wait] <dir>           move received files into dir (--wait: until one arrives)
  wg up <file.conf> [--name NAME]   bring up a WireGuard interface from a wg-quick file (foreground)
  wg show [NAME] [--json]           show running WireGuard interfaces
  web [--port N] [--save-dir DIR] [--host ADDRESS --tls-cert FILE --tls-key FILE] [--socket PATH]
                                    the app's window in a browser, attached to the daemon (default port 8088)

The tailnet verbs take --socket PATH (or TRELLIS_SOCKET) to reach a daemon on another socket.
`;

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'wg':
      return runWg(rest);
    case 'daemon':
      return runDaemon(rest);
    case 'up':
    case 'down':
    case 'logout':
    case 'status':
      return runTailnet(verb, rest);
    case 'set':
      return runSet(rest);
    case 'exit-node':
      return runExitNode(rest);
    case 'login':
    case 'switch':
      return runProfiles(verb, rest);
    case 'ping':
    case 'netcheck':
      return runDiagnose(verb, rest);
    case 'file':
      return runFile(rest);
    case 'web':
      return runWeb(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return verb === undefined ? 2 : 0;
    default:
      process.stderr.write(`trellis: unknown command ${JSON.stringify(verb)}\n\n${USAGE}`);
      return 2;
  }
}

/** Runs one trellis command; the exit code (a failure that escapes a verb is printed as one line, code 1). */
export async function runTrellis(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } catch (e) {
    process.stderr.write(`trellis: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
