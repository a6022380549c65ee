// What the SOCKS5 and HTTP proxies share: a TCP listener that hands each client to serve(), drops a client whose
// socket fails or whose serve() throws, and caps how many clients are connected at once.
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';

export abstract class ProxyListener {
  readonly server: Server;

  constructor(maxClients = 1024) {
    this.server = createServer((s) => {
      s.on('error', () => s.destroy());
      this.serve(s).catch(() => s.destroy());
    });
    this.server.maxConnections = maxClients;
  }

  protected abstract serve(s: Socket): Promise<void>;

  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve(this.server.address() as AddressInfo));
    });
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}
