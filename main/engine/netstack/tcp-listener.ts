// A TCP port the stack accepts connections on.
import { EventEmitter } from 'node:events';

/** A TCP port we accept connections on: emits 'connection' (socket: TcpSocket). */
export class TcpListener extends EventEmitter {
  constructor(
    readonly port: number,
    private readonly onClose: () => void,
  ) {
    super();
  }
  close(): void {
    this.onClose();
  }
}
