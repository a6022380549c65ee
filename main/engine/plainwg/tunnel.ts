// A plain WireGuard interface from a wg-quick file: TUN device + UDP sockets + the WireGuard device,
// with the OS addresses and routes the file asks for. `trellis wg up` runs one of these in the foreground.
import { lookup } from 'node:dns/promises';
import { formatAddress } from '../packet/ip.ts';
import { udpBatchAvailable } from '../tun/native.ts';
import { configureInterface } from '../tun/os-config.ts';
import { TunOpenError, TunPort } from '../tun/tun-port.ts';
import { BatchUdpTransport } from '../udp/batch-udp.ts';
import { type DatagramTransport, UdpTransport } from '../udp/udp.ts';
import type { WgQuickConfig } from '../wg/config-file.ts';
import type { WgTimers } from '../wg/constants.ts';
import { Device, type DeviceEvent, type DropCounters } from '../wg/device.ts';
import { Endpoint, endpointOf } from '../wg/endpoint.ts';
import type { MessageViews } from '../wg/keypair.ts';
import { formatKey } from '../wg/keys.ts';
import { receiveDatagram } from '../wg/receive.ts';
import { sendKeepalive, sendPacket } from '../wg/send.ts';
import { TICK_MS, tickTimers } from '../wg/timers.ts';
import { FullTunnel } from './full-tunnel.ts';

export const DEFAULT_MTU = 1420;

export class TunnelError extends Error {
  override readonly name = 'TunnelError';
  constructor(
    message: string,
    readonly kind: 'privilege' | 'busy' | 'resolve' | 'config' | 'os',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface TunnelOptions {
  name: string;
  config: WgQuickConfig;
  log: (line: string) => void;
  /** Test-only timer overrides; production leaves this out. */
  timers?: Partial<WgTimers>;
}

export interface PeerStatus {
  publicKey: string;
  endpoint: string | null;
  allowedIPs: string[];
  /** Unix seconds of the latest handshake, 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
}

export interface TunnelStatus {
  name: string;
  publicKey: string;
  listenPort: number;
  mtu: number;
  peers: PeerStatus[];
  drops: DropCounters;
}

async function resolveEndpoint(host: string, port: number, line: number): Promise<Endpoint> {
  try {
    const { address } = await lookup(host);
    return endpointOf(address, port);
  } catch (e) {
    throw new TunnelError(`line ${line}: cannot resolve Endpoint host ${JSON.stringify(host)}`, 'resolve', {
      cause: e,
    });
  }
}

export class WgTunnel {
  private tickTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Policy routing for 0.0.0.0/0 or ::/0 (wg-quick's table and rules), while it is in place. */
  private fullTunnel: FullTunnel | undefined;

  private constructor(
    readonly name: string,
    private readonly device: Device,
    private readonly tun: TunPort,
    private readonly udp: DatagramTransport,
    private readonly mtu: number,
  ) {}

  static async up(o: TunnelOptions): Promise<WgTunnel> {
    const cfg = o.config;
    const mtu = cfg.mtu ?? DEFAULT_MTU;
    const endpoints = await Promise.all(
      cfg.peers.map((p) => (p.endpoint ? resolveEndpoint(p.endpoint.host, p.endpoint.port, p.line) : undefined)),
    );
    const onEvent = (e: DeviceEvent): void => o.log(describeEvent(e));
    const device = new Device({ privateKey: cfg.privateKey, mtu, timers: o.timers, onEvent });
    cfg.peers.forEach((p, i) => {
      device.setPeer({
        publicKey: p.publicKey,
        presharedKey: p.presharedKey,
        endpoint: endpoints[i],
        allowedIPs: p.allowedIPs,
        persistentKeepalive: p.persistentKeepalive,
      });
    });
    // Privilege first: a TUN device is what needs root, and its error is the clearest.
    let tun: TunPort;
    try {
      tun = TunPort.open({ name: o.name });
    } catch (e) {
      if (e instanceof TunOpenError) throw new TunnelError(e.message, e.kind, { cause: e });
      throw e;
    }
    // Decrypted packets go to the TUN in one batch per received batch of datagrams.
    const onDatagram = (msg: Uint8Array, from: Endpoint, views?: MessageViews): void =>
      receiveDatagram(device, msg, from, views);
    const onBatchEnd = (): void => {
      tun.flush();
      udp.flush();
    };
    let udp: DatagramTransport;
    try {
      udp = udpBatchAvailable()
        ? BatchUdpTransport.open(cfg.listenPort ?? 0, onDatagram, onBatchEnd)
        : await UdpTransport.open(cfg.listenPort ?? 0, (msg, from) => {
            onDatagram(msg, from);
            onBatchEnd();
          });
    } catch (e) {
      tun.close();
      throw new TunnelError((e as Error).message, 'busy', { cause: e });
    }
    const tunnel = new WgTunnel(tun.name, device, tun, udp, mtu);
    device.attach({
      releasesOnFlush: udp instanceof BatchUdpTransport, // sendmmsg at flush(); node:dgram keeps the buffer
      // Every endpoint here is a UDP address: the config's, or one roamed to from a datagram's source.
      sendDatagram: (msg, to) => {
        if (to instanceof Endpoint) udp.send(msg, to);
      },
      writePacket: (pkt) => tun.write(pkt),
      flush: () => udp.flush(),
    });
    const routes = cfg.peers.flatMap((p) => p.allowedIPs.map((a) => `${formatAddress(a.address)}/${a.bits}`));
    const defaults: string[] = routes.filter((r) => r === '0.0.0.0/0' || r === '::/0');
    try {
      await configureInterface({
        name: tun.name,
        mtu,
        addresses: cfg.addresses.map((a) => a.text),
        routes: routes.filter((r) => !defaults.includes(r)),
      });
      if (defaults.length > 0) {
        if (!(udp instanceof BatchUdpTransport)) {
          throw new Error('a full tunnel needs the native UDP socket (to mark its datagrams), which is not available');
        }
        const families = defaults.map((r) => (r.includes(':') ? 6 : 4) as 4 | 6);
        tunnel.fullTunnel = await FullTunnel.up(tun.name, families, (mark) => udp.setMark(mark));
        o.log(
          `full tunnel: ${defaults.join(', ')} via table ${tunnel.fullTunnel.table} (fwmark ${tunnel.fullTunnel.table})`,
        );
      }
    } catch (e) {
      await tunnel.down();
      throw new TunnelError((e as Error).message, 'os', { cause: e });
    }
    tun.start(
      (pkt) => sendPacket(device, pkt),
      () => udp.flush(),
      (err) => {
        o.log(`error: TUN read failed: ${err.message}`);
        void tunnel.down();
      },
    );
    tunnel.tickTimer = setInterval(() => tickTimers(device), TICK_MS);
    for (const peer of device.peers.values()) {
      if (peer.persistentKeepaliveMs > 0 && peer.endpoint) sendKeepalive(device, peer);
    }
    o.log(`interface ${tun.name} up: listening on UDP ${udp.port}, MTU ${mtu}, ${cfg.peers.length} peer(s)`);
    return tunnel;
  }

  status(): TunnelStatus {
    const byPeer = new Map<string, string[]>();
    for (const { prefix, value } of this.device.routes.entries()) {
      const list = byPeer.get(value.publicKeyB64) ?? [];
      list.push(`${formatAddress(prefix.address)}/${prefix.bits}`);
      byPeer.set(value.publicKeyB64, list);
    }
    return {
      name: this.name,
      publicKey: formatKey(this.device.identity.staticPublic),
      listenPort: this.udp.port,
      mtu: this.mtu,
      peers: [...this.device.peers.values()].map((p) => ({
        publicKey: p.publicKeyB64,
        endpoint: p.endpoint ? p.endpoint.describe() : null,
        allowedIPs: byPeer.get(p.publicKeyB64) ?? [],
        latestHandshake: Math.floor(p.lastHandshakeWall / 1000),
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        persistentKeepalive: p.persistentKeepaliveMs / 1000,
      })),
      drops: { ...this.device.drops },
    };
  }

  /** Tears down everything; the interface disappears with its TUN file descriptor. Idempotent. */
  async down(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    await this.fullTunnel?.down();
    this.tun.close();
    this.udp.close();
  }
}

function describeEvent(e: DeviceEvent): string {
  switch (e.kind) {
    case 'handshake':
      return `handshake completed with peer ${e.peer} (${e.role})${e.endpoint ? ` at ${e.endpoint.describe()}` : ''}`;
    case 'handshakeGiveUp':
      return `handshake with peer ${e.peer} did not complete after 90 s; giving up until there is traffic`;
    case 'roamed':
      return `peer ${e.peer} is now at ${e.endpoint.describe()}`;
  }
}
