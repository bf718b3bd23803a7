/**
 * Host-to-guest port forwards (`hostfwd=`, `-redir`), as QEMU does them: a host
 * listener per rule; each connection (TCP) or client (UDP) becomes a flow to the
 * guest, which sees it coming from the gateway address, like QEMU.
 *
 * TCP: each accepted socket becomes an active open from the gateway (on a port from
 * the forward port range) to the guest; the relay adopts the pair and keeps the host
 * socket paused until the guest answers. A guest that refuses resets the client.
 *
 * UDP: each host client (address, port) gets its own gateway port towards the guest,
 * so the guest's replies find their way back; a mapping idle for `udpIdleMs` (240 s)
 * is forgotten; at most `maxUdpClients` per rule (the oldest goes first, counted).
 *
 * A rule whose host port cannot be bound fails alone, with a message naming the
 * address; the others keep working.
 */
import dgram from "node:dgram";
import net from "node:net";
import type { HostForward } from "../config.js";
import type { Logger } from "../log.js";
import type { DropCounters } from "../stack/drop-counters.js";
import type { GuestTcpLayer } from "../stack/guest-tcp.js";
import type { UdpToGuest } from "../stack/user-stack.js";
import { ipv4ToString, parseIpv4 } from "../stack/wire/addr.js";
import { wrapTcpSocket } from "./host-net.js";
import type { TcpRelay } from "./tcp-relay.js";

export interface HostForwardContext {
  /** the gateway address guests see forwarded connections come from */
  gateway: number;
  /** the guest address for rules with an empty guest address (the first DHCP address) */
  defaultGuest: number;
  tcp: GuestTcpLayer;
  relay: TcpRelay;
  sendUdp(d: UdpToGuest): void;
  drops: DropCounters;
  log: Logger;
  now(): number;
}

export interface ForwardInfo {
  rule: HostForward;
  /** the bound host address, once listening */
  bound?: { address: string; port: number };
  error?: string;
}

interface UdpClient {
  key: string;
  address: string;
  port: number;
  gatewayPort: number;
  lastActive: number;
}

interface UdpRule {
  rule: HostForward;
  guest: number;
  socket: dgram.Socket;
  byClient: Map<string, UdpClient>;
}

/** Gateway ports for forwarded flows; away from what guests usually listen on. */
const firstForwardPort = 49152;
const forwardPortCount = 16384;

export class HostForwarder {
  private readonly tcpServers: net.Server[] = [];
  private readonly udpRules: UdpRule[] = [];
  /** gateway port → (rule, client) for UDP replies from the guest */
  private readonly udpByGatewayPort = new Map<number, { rule: UdpRule; client: UdpClient }>();
  private nextPort = 0;
  readonly forwards: ForwardInfo[] = [];
  private readonly udpIdleMs = 240_000;
  private readonly maxUdpClients = 1024;

  constructor(private readonly ctx: HostForwardContext) {}

  /** Opens every rule; resolves when each is listening or has failed (never rejects). */
  async open(rules: readonly HostForward[]): Promise<void> {
    await Promise.all(rules.map((r) => this.add(r)));
  }

  async add(rule: HostForward): Promise<ForwardInfo> {
    const info: ForwardInfo = { rule };
    this.forwards.push(info);
    // the CLI validated the address; an unparsable one would be a programming error
    const guest =
      rule.guestAddr === "" ? this.ctx.defaultGuest : (parseIpv4(rule.guestAddr) ?? this.ctx.defaultGuest);
    const host = rule.hostAddr === "" ? "0.0.0.0" : rule.hostAddr;
    try {
      info.bound =
        rule.proto === "tcp"
          ? await this.listenTcp(rule, guest, host)
          : await this.bindUdp(rule, guest, host);
      this.ctx.log.info(
        `forwarding ${rule.proto} ${info.bound.address}:${info.bound.port} to ${ipv4ToString(guest)}:${rule.guestPort}`,
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      info.error = `hostfwd=${rule.proto}:${rule.hostAddr}:${rule.hostPort}-${rule.guestAddr}:${rule.guestPort}: cannot bind ${host}:${rule.hostPort}: ${code || (err as Error).message}${code === "EADDRINUSE" ? " (port already in use)" : ""}`;
      this.ctx.log.error(info.error);
    }
    return info;
  }

  /** Routes a guest datagram to a forwarded client; false when it is not forward traffic. */
  fromGuestUdp(src: number, srcPort: number, dst: number, dstPort: number, payload: Buffer): boolean {
    if (dst !== this.ctx.gateway) return false;
    const m = this.udpByGatewayPort.get(dstPort);
    if (!m || m.rule.guest !== src || m.rule.rule.guestPort !== srcPort) return false;
    m.client.lastActive = this.ctx.now();
    m.rule.socket.send(Buffer.from(payload), m.client.port, m.client.address);
    return true;
  }

  expire(now: number): void {
    for (const r of this.udpRules) {
      for (const c of r.byClient.values()) {
        if (c.lastActive + this.udpIdleMs > now) continue;
        this.forgetUdp(r, c);
      }
    }
  }

  async close(): Promise<void> {
    for (const r of this.udpRules) r.socket.close();
    await Promise.all(this.tcpServers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }

  private gatewayPort(inUse: (p: number) => boolean): number | undefined {
    for (let i = 0; i < forwardPortCount; i++) {
      const p = firstForwardPort + ((this.nextPort + i) % forwardPortCount);
      if (!inUse(p)) {
        this.nextPort = (this.nextPort + i + 1) % forwardPortCount;
        return p;
      }
    }
    return undefined;
  }

  private listenTcp(
    rule: HostForward,
    guest: number,
    host: string,
  ): Promise<{ address: string; port: number }> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) =>
      this.acceptTcp(rule, guest, sock),
    );
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port: rule.hostPort }, () => {
        server.off("error", reject);
        server.on("error", (e) => this.ctx.log.warn("forward listener error", { error: e.message }));
        this.tcpServers.push(server);
        const a = server.address() as net.AddressInfo;
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  private acceptTcp(rule: HostForward, guest: number, sock: net.Socket): void {
    sock.setNoDelay(true);
    const tuple = (port: number) => ({
      guestAddr: guest,
      guestPort: rule.guestPort,
      remoteAddr: this.ctx.gateway,
      remotePort: port,
    });
    const port = this.gatewayPort((p) => this.ctx.tcp.has(tuple(p)));
    const conn = port === undefined ? undefined : this.ctx.tcp.connect(tuple(port));
    if (!conn) {
      this.ctx.drops.drop("hostfwd-no-room");
      sock.resetAndDestroy();
      return;
    }
    const client = `${sock.remoteAddress}:${sock.remotePort}`;
    this.ctx.relay.adopt(conn, client, (events) => wrapTcpSocket(sock, true, events));
  }

  private bindUdp(
    rule: HostForward,
    guest: number,
    host: string,
  ): Promise<{ address: string; port: number }> {
    const socket = dgram.createSocket({ type: "udp4" });
    const r: UdpRule = { rule, guest, socket, byClient: new Map() };
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address: host, port: rule.hostPort, exclusive: true }, () => {
        socket.off("error", reject);
        socket.on("error", (e) => this.ctx.log.debug("forward udp socket error", { error: e.message }));
        socket.on("message", (data, from) => this.fromHostUdp(r, data, from.address, from.port));
        this.udpRules.push(r);
        const a = socket.address();
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  private fromHostUdp(r: UdpRule, data: Buffer, address: string, port: number): void {
    const key = `${address}:${port}`;
    let c = r.byClient.get(key);
    if (!c) {
      if (r.byClient.size >= this.maxUdpClients) {
        const oldest = r.byClient.values().next().value;
        if (oldest) {
          this.ctx.drops.drop("hostfwd-udp-client-evicted");
          this.forgetUdp(r, oldest);
        }
      }
      const gp = this.gatewayPort((p) => this.udpByGatewayPort.has(p));
      if (gp === undefined) return this.ctx.drops.drop("hostfwd-no-room");
      c = { key, address, port, gatewayPort: gp, lastActive: 0 };
      r.byClient.set(key, c);
      this.udpByGatewayPort.set(gp, { rule: r, client: c });
    }
    c.lastActive = this.ctx.now();
    this.ctx.sendUdp({
      src: this.ctx.gateway,
      srcPort: c.gatewayPort,
      dst: r.guest,
      dstPort: r.rule.guestPort,
      payload: data,
    });
  }

  private forgetUdp(r: UdpRule, c: UdpClient): void {
    r.byClient.delete(c.key);
    this.udpByGatewayPort.delete(c.gatewayPort);
  }
}
