// `trellis login` and `trellis switch`: several accounts, as `tailscale login` / `tailscale switch` have them.
// login adds an account (its own control server, keys and login) and makes it the one in use; switch lists them or
// changes to another without logging in again.

import type { EngineClient } from '../engine/ipc/rpc.ts';
import type { ProfileInfo, ProfileList, StatusSnapshot } from '../engine/protocol.ts';
import { noMoreArgs, resolveSocketPath, takeOption, takeSwitch, UsageError } from './paths.ts';
import { alignColumns, bringUp, parseUpOptions, printable, stateHeader, UP_HELP, withClient } from './tailnet.ts';

/** Tailscale's control server: the account `login` adds when no --login-server is given, as tailscale does. */
const DEFAULT_LOGIN_SERVER = 'https://controlplane.tailscale.com';
/** How long `switch` waits for the account it changed to settle (Running, Stopped or NeedsLogin). */
const SWITCH_TIMEOUT_MS = 30_000;

export type ProfileVerb = 'login' | 'switch';

const USAGE: Record<ProfileVerb, string> = {
  login:
    'trellis login [--login-server URL] [--auth-key file:PATH|-] [--hostname NAME] [--accept-dns=true|false] ' +
    '[--timeout SECONDS] [--socket PATH]',
  switch: 'trellis switch --list [--json] | trellis switch ID|NAME | trellis switch --remove ID|NAME [--socket PATH]',
};

const LOGIN_HELP = `usage: ${USAGE.login}

Adds an account and makes it the one in use; the account used before stays, logged in, for \`trellis switch\`.
Without --login-server the account is on Tailscale's control server. The options are those of \`trellis up\`:
${UP_HELP.slice(UP_HELP.indexOf('\n\n') + 2)}`;

const SWITCH_HELP = `usage: ${USAGE.switch}

  --list          the accounts: id, tailnet, login name (the one in use marked *), control server
  ID|NAME         change to the account with this id, login name or tailnet; it connects if it was connected
  --remove ID     log the account out and delete it with its keys
`;

export async function runProfiles(verb: ProfileVerb, args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(verb === 'login' ? LOGIN_HELP : SWITCH_HELP);
    return 0;
  }
  try {
    const socket = resolveSocketPath(takeOption(args, '--socket'));
    if (verb === 'login') {
      const o = await parseUpOptions(args);
      const controlURL = o.controlURL ?? DEFAULT_LOGIN_SERVER;
      return await withClient(socket, async (client) => {
        await client.request('addProfile', { controlURL }, { timeoutMs: 30_000 });
        return bringUp(client, { ...o, controlURL });
      });
    }
    return await withClient(socket, (client) => runSwitch(client, args));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`trellis ${verb}: ${e.message}\nusage: ${USAGE[verb]}\n`);
      return 2;
    }
    process.stderr.write(`trellis ${verb}: ${printable(e instanceof Error ? e.message : String(e))}\n`);
    return 1;
  }
}

async function runSwitch(client: EngineClient, args: string[]): Promise<number> {
  const list = takeSwitch(args, '--list');
  const json = takeSwitch(args, '--json');
  const remove = takeOption(args, '--remove');
  if (list) {
    noMoreArgs(args);
    const profiles = await client.request('listProfiles', {});
    process.stdout.write(json ? `${JSON.stringify(profiles, null, 2)}\n` : formatProfiles(profiles));
    return 0;
  }
  if (json) throw new UsageError('--json goes with --list');
  if (remove !== undefined) {
    noMoreArgs(args);
    const after = await client.request('removeProfile', { profile: remove }, { timeoutMs: 30_000 });
    process.stdout.write(`Removed account ${printable(remove)}.\n${formatProfiles(after)}`);
    return 0;
  }
  const [name, ...extra] = args;
  if (name === undefined || name.startsWith('-')) throw new UsageError('name the account to switch to');
  noMoreArgs(extra);
  const before = await client.request('status', {});
  const snap = await client.request('switchProfile', { profile: name }, { timeoutMs: 30_000 });
  if (snap.profile && snap.profile.id === before.profile?.id) {
    process.stdout.write(`Already on account ${describe(snap.profile)}.\n`);
    return 0;
  }
  process.stdout.write(`Switched to account ${snap.profile ? describe(snap.profile) : printable(name)}.\n`);
  const settled = await settle(client, SWITCH_TIMEOUT_MS);
  const addresses = settled.self?.addresses ?? [];
  const head = stateHeader(settled) ?? `Running.${addresses.length > 0 ? ` Addresses: ${addresses.join(', ')}` : ''}`;
  process.stdout.write(`${head}\n`);
  return settled.state === 'Starting' ? 1 : 0;
}

/** Polls status until the state is no longer on its way (Starting, NoState) or the time is up. */
async function settle(client: EngineClient, timeoutMs: number): Promise<StatusSnapshot> {
  const deadline = Date.now() + timeoutMs;
  let s = await client.request('status', {});
  for (let i = 0; i < 1_000 && Date.now() < deadline; i++) {
    const waiting = s.state === 'Starting' || s.state === 'NoState' || (s.state === 'Running' && !s.self);
    if (!waiting) break;
    await new Promise((r) => setTimeout(r, 200));
    s = await client.request('status', {});
  }
  return s;
}

function describe(p: ProfileInfo): string {
  const who = p.loginName || p.tailnet;
  return `${p.id}${who ? ` (${printable(who)})` : ''} on ${printable(p.controlURL || 'no server yet')}`;
}

/** `tailscale switch --list`-style columns, with each account's server shown plainly. */
export function formatProfiles(list: ProfileList): string {
  const rows = list.profiles.map((p) => [
    p.id,
    p.tailnet || '-',
    `${p.loginName || '-'}${p.loggedIn || !p.loginName ? '' : ' (logged out)'}${p.id === list.current ? ' *' : ''}`,
    p.controlURL || '-',
  ]);
  return `${alignColumns([['ID', 'Tailnet', 'Account', 'Server'], ...rows]).join('\n')}\n`;
}
