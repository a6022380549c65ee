// A stand-in for a peer's PeerAPI in the send side's unit tests (below the real peers, which the interop tests use):
// resume queries get 404, an upload's body is kept, and once held it stops reading, so a send stays in flight
// until it is cancelled.
import { createServer } from 'node:http';

export interface StubReceiver {
  /** http://127.0.0.1:<port>, as a PeerAPI base. */
  base: string;
  /** The body of the last upload that ended. */
  got(): Buffer;
  /** From now on, stop reading each upload after its next chunk. */
  hold(): void;
  close(): void;
}

export async function startStubReceiver(): Promise<StubReceiver> {
  let got = Buffer.alloc(0);
  let holding = false;
  const server = createServer((req, res) => {
    if (req.method === 'GET') return void res.writeHead(404).end();
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => {
      parts.push(d);
      if (holding) req.pause();
    });
    req.on('end', () => {
      got = Buffer.concat(parts);
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    got: () => got,
    hold: () => {
      holding = true;
    },
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}
