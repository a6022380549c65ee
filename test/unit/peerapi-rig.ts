// A real PeerAPI on 127.0.0.1 for the Taildrop unit tests, with an inbox in a temp dir: the caller 127.0.0.1 is a
// known sender allowed to send files (its id names the partial files: `name.<id>.partial`).
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Inbox } from '../../main/engine/taildrop/inbox.ts';
import { PeerApi, type PeerApiOptions } from '../../main/engine/taildrop/peerapi.ts';

function startApi(inbox: Inbox, senderId: string, extra: Partial<PeerApiOptions>, log: (m: string) => void): PeerApi {
  return new PeerApi({
    inbox,
    identify: (ip) => (ip === '127.0.0.1' ? { senderId, name: 'sender', mayFileSend: true } : undefined),
    fileSharing: () => true,
    log,
    ...extra,
  });
}

/** A PeerAPI with its own inbox (removed after the test), options as given; fn gets its port and its log. */
export async function withApi(
  t: { after: (fn: () => Promise<void>) => void },
  extra: Partial<PeerApiOptions>,
  fn: (port: number, inbox: Inbox, logs: string[]) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-peerapi-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const inbox = new Inbox(dir);
  await inbox.ensure();
  const logs: string[] = [];
  const api = startApi(inbox, 'n7', extra, (m) => logs.push(m));
  await api.listen(['127.0.0.1']);
  try {
    await fn(api.port4, inbox, logs);
  } finally {
    api.close();
  }
}

/** A PeerAPI whose inbox lives in stateDir (the caller's to remove); fn gets its base URL. */
export async function withPeerApi(stateDir: string, fn: (base: string, inbox: Inbox) => Promise<void>): Promise<void> {
  const inbox = new Inbox(stateDir);
  const api = startApi(inbox, '7', {}, () => {});
  await api.listen(['127.0.0.1']);
  try {
    await fn(`http://127.0.0.1:${api.port4}`, inbox);
  } finally {
    api.close();
  }
}

/** A TCP connection to the PeerAPI's port on 127.0.0.1. */
export function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}
