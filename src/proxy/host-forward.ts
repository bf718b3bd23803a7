/**
 * Host-to-guest port forwards (`hostfwd=`, `-redir`, and rules added at run time), as
 * QEMU does them: a host listener per rule; each connection (TCP) or client (UDP)
 * becomes a flow to the guest.
 *
 * Where a forwarded flow comes from, as the guest sees it:
 * - by default (QEMU's way) from the gateway address, on a port from the forward port
 *   range (49152-65535), so the guest needs no route back to the real client;
 * - with `preserveSource` from the real client's address and port, so the guest's
 *   server logs and filters by the real client. Replies go to the guest's default
 *   route (the gateway's MAC) and find the flow by its tuple. A client on the host's
 *   loopback (127/8), or one whose address lies inside the virtual network, still
 *   appears as the gateway: a Linux guest drops packets from 127/8 arriving on its NIC
 *   as martians, and it would answer either kind directly instead of via the gateway.
 *   A client whose tuple is taken (the same client port already forwarded to the same
 *   guest port) falls back to the gateway too.
 *
 * TCP: each accepted socket becomes an active open towards the guest; the relay adopts
 * the pair and keeps the host socket paused until the guest answers. A guest that
 * refuses resets the client.
 *
 * UDP: each host client (address, port) is a mapping with its own source towards the
 * guest, so the guest's replies find their way back; a mapping idle for `udpIdleMs`
 * (240 s) is forgotten; at most `maxUdpClients` per rule (the oldest goes first, counted).
 *
 * Rules have ids (given by the caller, who keeps them unique). `remove` closes the
 * rule's listener, as QEMU's hostfwd_remove does: TCP connections already accepted
 * stay up until they end; a UDP rule's mappings go with its socket.
 *
 * A rule whose host port cannot be bound fails alone, with a message naming the
 * address; the others keep working.
 *
 * IPv6: a rule's host address may be IPv6 (an IPv6 listener; "::" takes IPv4 clients
 * too, as a dual-stack socket) and its guest address may be IPv6. The guest's family is
 * its address's, or for an empty guest address the host address's: an IPv6 host
 * address with no guest address forwards to the guest's first IPv6 address the stack
 * learned (from its NDP and traffic; libslirp resolves `::` the same way), looked up
 * for each new client, so a guest that comes up later is found; a client arriving
 * before any is known is reset (TCP) or dropped (UDP), counted
 * "hostfwd-no-guest6". A listener of either family forwards to a guest of either: the
 * guest sees the flow come from the gateway of its own family (preserveSource keeps a
 * client's address only when it is of the guest's family).
 */
import dgram from "node:dgram";
import net from "node:net";
import type { HostForward } from "../config.js";
import { hostFaults, type Logger } from "../log.js";
import type { DropCounters } from "../stack/drop-counters.js";
import type { GuestTcpLayer } from "../stack/guest-tcp.js";
import type { UdpToGuest, UdpToGuest6 } from "../stack/user-stack.js";
import { isIpv4Loopback, isIpv4Multicast, parseIpv4 } from "../stack/wire/addr.js";
import {
  type IpAddress,
  type Ipv6Address,
  ipToString,
  ipv6FromKey,
  ipv6InPrefix,
  ipv6Key,
  isIpv4Mapped,
  isIpv6LinkLocal,
  isIpv6Loopback,
  isIpv6Multicast,
  isIpv6Unspecified,
  parseIpv6,
} from "../stack/wire/ipv6-addr.js";
import { wrapTcpSocket } from "./host-net.js";
import type { TcpRelay } from "./tcp-relay.js";

export interface HostForwardContext {
  /** the gateway address guests see forwarded connections come from */
  gateway: number;
  /** the virtual network and its mask: clients inside it cannot keep their address */
  net: number;
  mask: number;
  /** the guest address for rules with an empty guest address (the first DHCP address) */
  defaultGuest: number;
  /** whether rules that do not say keep the client's source address (the netdev's default) */
  preserveSource: boolean;
  tcp: GuestTcpLayer;
  relay: TcpRelay;
  sendUdp(d: UdpToGuest): void;
  /** the IPv6 side (ipv6=on): the gateway, the prefix, the guest an empty address means, and the way back */
  ipv6?: {
    gateway: Ipv6Address;
    prefix: Ipv6Address;
    prefixLength: number;
    /** the guest's first IPv6 address the stack learned, if any yet */
    defaultGuest(): Ipv6Address | undefined;
    sendUdp(d: UdpToGuest6): void;
  };
  drops: DropCounters;
  log: Logger;
  now(): number;
}

export interface ForwardInfo {
  id: number;
  rule: HostForward;
  /**
   * the guest address the rule forwards to (the default guest when the rule says ""); for
   * an IPv6 rule with no guest address, the guest learned so far (undefined: none yet)
   */
  guest: IpAddress | undefined;
  /** the bound host address, once listening */
  bound?: { address: string; port: number };
  error?: string;
}

interface UdpClient {
  key: string;
  address: string;
  port: number;
  /** the guest this client's datagrams go to (an IPv6 guest as its ipv6Key) */
  guest: number | string;
  /** the source the guest sees: the client itself (preserved) or the gateway (ipv6Key on IPv6) */
  remote: number | string;
  remotePort: number;
  /** whether remotePort is a gateway port from the forward range */
  gatewayPort: boolean;
  lastActive: number;
}

interface UdpRule {
  info: ForwardInfo;
  socket: dgram.Socket;
  byClient: Map<string, UdpClient>;
}

interface Entry {
  info: ForwardInfo;
  server?: net.Server;
  udp?: UdpRule;
}

/** Gateway ports for forwarded flows; away from what guests usually listen on. */
const firstForwardPort = 49152;
const forwardPortCount = 16384;

export class HostForwarder {
  private readonly entries = new Map<number, Entry>();
  /** (remote, remotePort, guest, guestPort) as the guest sees it → the UDP mapping */
  private readonly udpByGuestSide = new Map<string, { rule: UdpRule; client: UdpClient }>();
  /** gateway ports taken by UDP mappings */
  private readonly udpGatewayPorts = new Set<number>();
  private nextPort = 0;
  private readonly udpIdleMs = 240_000;
  private readonly maxUdpClients = 1024;

  constructor(private readonly ctx: HostForwardContext) {}

  /** Opens every rule; resolves when each is listening or has failed (never rejects). */
  async open(rules: readonly { id: number; rule: HostForward }[]): Promise<void> {
    await Promise.all(rules.map((r) => this.add(r.id, r.rule)));
  }

  /** Every rule, in id order, with its listener or its error. */
  list(): ForwardInfo[] {
    return [...this.entries.values()].map((e) => e.info).sort((a, b) => a.id - b.id);
  }

  get(id: number): ForwardInfo | undefined {
    return this.entries.get(id)?.info;
  }

  /** Whether a rule keeps its clients' addresses. */
  keepsSource(rule: HostForward): boolean {
    return rule.preserveSource ?? this.ctx.preserveSource;
  }

  /**
   * The guest address a rule resolves to on this network now: IPv4 a number, IPv6 16
   * bytes, undefined for an IPv6 rule with no guest learned yet (or without IPv6).
   */
  guestOf(rule: HostForward): IpAddress | undefined {
    // callers validated the address; an unparsable one would be a programming error
    if (rule.guestAddr === "") {
      return rule.hostAddr.includes(":") ? this.ctx.ipv6?.defaultGuest() : this.ctx.defaultGuest;
    }
    if (rule.guestAddr.includes(":"))
      return this.ctx.ipv6 === undefined ? undefined : parseIpv6(rule.guestAddr);
    return parseIpv4(rule.guestAddr) ?? this.ctx.defaultGuest;
  }

  /**
   * Opens a rule under `id` (which must be new). Never rejects: a rule that cannot
   * bind stays listed with its `error` until it is removed.
   */
  async add(id: number, rule: HostForward): Promise<ForwardInfo> {
    if (this.entries.has(id)) throw new Error(`forward id ${id} is taken`);
    const info: ForwardInfo = { id, rule, guest: this.guestOf(rule) };
    const entry: Entry = { info };
    this.entries.set(id, entry);
    const host = rule.hostAddr === "" ? "0.0.0.0" : rule.hostAddr;
    try {
      const bound =
        rule.proto === "tcp" ? await this.listenTcp(entry, host) : await this.bindUdp(entry, host);
      if (this.entries.get(id) !== entry) {
        // removed while binding
        this.closeEntry(entry);
        return info;
      }
      info.bound = bound;
      this.ctx.log.info(
        `forwarding ${rule.proto} ${endpointText(bound.address, bound.port)} to ${info.guest === undefined ? "the guest's first IPv6 address" : endpointText(ipToString(info.guest), rule.guestPort)}${this.keepsSource(rule) ? " (client source kept)" : ""}`,
        { id },
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      info.error = `hostfwd=${rule.proto}:${bracketed(rule.hostAddr)}:${rule.hostPort}-${bracketed(rule.guestAddr)}:${rule.guestPort}: cannot bind ${endpointText(host, rule.hostPort)}: ${code || (err as Error).message}${code === "EADDRINUSE" ? " (port already in use)" : ""}`;
      this.ctx.log.error(info.error, { id });
    }
    return info;
  }

  /** Closes a rule's listener (accepted TCP connections stay); false for an unknown id. */
  remove(id: number): boolean {
    const entry = this.entries.get(id);
    if (!entry) return false;
    this.entries.delete(id);
    this.closeEntry(entry);
    const r = entry.info.rule;
    this.ctx.log.info(`removed forward ${r.proto} ${endpointText(r.hostAddr || "0.0.0.0", r.hostPort)}`, {
      id,
    });
    return true;
  }

  /**
   * Routes a guest datagram to a forwarded client; false when it is not forward traffic.
   * IPv6 addresses come as their ipv6Key.
   */
  fromGuestUdp(
    src: number | string,
    srcPort: number,
    dst: number | string,
    dstPort: number,
    payload: Buffer,
  ): boolean {
    if (this.udpByGuestSide.size === 0) return false;
    const m = this.udpByGuestSide.get(guestSideKey(dst, dstPort, src, srcPort));
    if (!m) return false;
    m.client.lastActive = this.ctx.now();
    m.rule.socket.send(Buffer.from(payload), m.client.port, m.client.address);
    return true;
  }

  expire(now: number): void {
    for (const e of this.entries.values()) {
      const r = e.udp;
      if (!r) continue;
      for (const c of r.byClient.values()) {
        if (c.lastActive + this.udpIdleMs > now) continue;
        this.forgetUdp(r, c);
      }
    }
  }

  async close(): Promise<void> {
    const servers: net.Server[] = [];
    for (const e of this.entries.values()) {
      if (e.server) servers.push(e.server);
      else this.closeEntry(e);
    }
    this.entries.clear();
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }

  private closeEntry(e: Entry): void {
    e.server?.close();
    if (e.udp) {
      for (const c of e.udp.byClient.values()) this.forgetUdp(e.udp, c);
      e.udp.socket.close();
    }
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

  /**
   * The client's own address as a guest of `family` may see it (IPv6 as its ipv6Key), or
   * undefined when it must be the gateway.
   */
  private keptSource(address: string | undefined, family: 4 | 6): number | string | undefined {
    if (address === undefined) return undefined;
    if (family === 6) return this.keptSource6(address);
    const a = parseIpv4(address.startsWith("::ffff:") ? address.slice(7) : address);
    if (a === undefined || a === 0 || a === 0xffffffff) return undefined;
    if (isIpv4Loopback(a) || isIpv4Multicast(a)) return undefined;
    if ((a & this.ctx.mask) >>> 0 === this.ctx.net) return undefined;
    return a;
  }

  private keptSource6(address: string): string | undefined {
    const v6 = this.ctx.ipv6;
    const a = address.includes(":") ? parseIpv6(address) : undefined;
    if (v6 === undefined || a === undefined) return undefined;
    if (
      isIpv6Loopback(a) ||
      isIpv6Unspecified(a) ||
      isIpv6Multicast(a) ||
      isIpv6LinkLocal(a) ||
      isIpv4Mapped(a)
    )
      return undefined;
    if (ipv6InPrefix(a, v6.prefix, v6.prefixLength)) return undefined;
    return ipv6Key(a);
  }

  /** The guest of a rule for a new client, or undefined (counted) when there is none yet. */
  private clientGuest(info: ForwardInfo): IpAddress | undefined {
    const guest =
      info.rule.guestAddr === "" && info.rule.hostAddr.includes(":") ? this.guestOf(info.rule) : info.guest;
    if (guest === undefined) this.ctx.drops.drop("hostfwd-no-guest6");
    else info.guest = guest;
    return guest;
  }

  private listenTcp(entry: Entry, host: string): Promise<{ address: string; port: number }> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) =>
      this.acceptTcp(entry.info, sock),
    );
    entry.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port: entry.info.rule.hostPort }, () => {
        server.off("error", reject);
        // accept(2) failing (EMFILE): libuv has refused that client; one line, not one per client
        server.on("error", (e: NodeJS.ErrnoException) =>
          hostFaults.report(
            "tcp-forward-accept",
            e.code ?? "EIO",
            "a client of a forward was refused",
            {
              error: e.message,
            },
            this.ctx.log,
          ),
        );
        const a = server.address() as net.AddressInfo;
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  private acceptTcp(info: ForwardInfo, sock: net.Socket): void {
    sock.setNoDelay(true);
    const guest = this.clientGuest(info);
    if (guest === undefined) {
      sock.resetAndDestroy();
      return;
    }
    const family = typeof guest === "number" ? 4 : 6;
    const gateway: number | string =
      typeof guest === "number" ? this.ctx.gateway : ipv6Key(this.ctx.ipv6?.gateway ?? guest);
    const tuple = (remote: number | string, port: number) =>
      typeof guest === "number"
        ? { guestAddr: guest, guestPort: info.rule.guestPort, remoteAddr: remote as number, remotePort: port }
        : {
            guestAddr: 0,
            guestPort: info.rule.guestPort,
            remoteAddr: 0,
            remotePort: port,
            guestAddr6: guest,
            remoteAddr6: ipv6FromKey(remote as string),
          };
    let conn: ReturnType<GuestTcpLayer["connect"]>;
    const kept = this.keepsSource(info.rule) ? this.keptSource(sock.remoteAddress, family) : undefined;
    if (kept !== undefined && sock.remotePort !== undefined) {
      conn = this.ctx.tcp.connect(tuple(kept, sock.remotePort));
      if (!conn) this.ctx.drops.drop("hostfwd-source-not-kept");
    }
    if (!conn) {
      const port = this.gatewayPort((p) => this.ctx.tcp.has(tuple(gateway, p)));
      conn = port === undefined ? undefined : this.ctx.tcp.connect(tuple(gateway, port));
    }
    if (!conn) {
      this.ctx.drops.drop("hostfwd-no-room");
      sock.resetAndDestroy();
      return;
    }
    const client = `${sock.remoteAddress}:${sock.remotePort}`;
    this.ctx.relay.adopt(conn, client, (events) => wrapTcpSocket(sock, true, events));
  }

  private bindUdp(entry: Entry, host: string): Promise<{ address: string; port: number }> {
    const socket = dgram.createSocket({ type: host.includes(":") ? "udp6" : "udp4" });
    const r: UdpRule = { info: entry.info, socket, byClient: new Map() };
    entry.udp = r;
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address: host, port: entry.info.rule.hostPort, exclusive: true }, () => {
        socket.off("error", reject);
        socket.on("error", (e) => this.ctx.log.debug("forward udp socket error", { error: e.message }));
        socket.on("message", (data, from) => this.fromHostUdp(r, data, from.address, from.port));
        const a = socket.address();
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  private fromHostUdp(r: UdpRule, data: Buffer, address: string, port: number): void {
    const key = `${address}:${port}`;
    const guestPort = r.info.rule.guestPort;
    let c = r.byClient.get(key);
    if (!c) {
      const guestAddr = this.clientGuest(r.info);
      if (guestAddr === undefined) return;
      const family = typeof guestAddr === "number" ? 4 : 6;
      const guest = typeof guestAddr === "number" ? guestAddr : ipv6Key(guestAddr);
      const gateway =
        typeof guestAddr === "number" ? this.ctx.gateway : ipv6Key(this.ctx.ipv6?.gateway ?? guestAddr);
      if (r.byClient.size >= this.maxUdpClients) {
        const oldest = r.byClient.values().next().value;
        if (oldest) {
          this.ctx.drops.drop("hostfwd-udp-client-evicted");
          this.forgetUdp(r, oldest);
        }
      }
      let remote = this.keepsSource(r.info.rule) ? this.keptSource(address, family) : undefined;
      let remotePort = port;
      if (remote !== undefined && this.udpByGuestSide.has(guestSideKey(remote, port, guest, guestPort))) {
        this.ctx.drops.drop("hostfwd-source-not-kept");
        remote = undefined;
      }
      if (remote === undefined) {
        const gp = this.gatewayPort((p) => this.udpGatewayPorts.has(p));
        if (gp === undefined) return this.ctx.drops.drop("hostfwd-no-room");
        remote = gateway;
        remotePort = gp;
        this.udpGatewayPorts.add(gp);
      }
      c = {
        key,
        address,
        port,
        guest,
        remote,
        remotePort,
        gatewayPort: remote === gateway,
        lastActive: 0,
      };
      r.byClient.set(key, c);
      this.udpByGuestSide.set(guestSideKey(remote, remotePort, guest, guestPort), { rule: r, client: c });
    }
    c.lastActive = this.ctx.now();
    if (typeof c.guest === "number") {
      this.ctx.sendUdp({
        src: c.remote as number,
        srcPort: c.remotePort,
        dst: c.guest,
        dstPort: guestPort,
        payload: data,
      });
    } else {
      this.ctx.ipv6?.sendUdp({
        src: ipv6FromKey(c.remote as string),
        srcPort: c.remotePort,
        dst: ipv6FromKey(c.guest),
        dstPort: guestPort,
        payload: data,
      });
    }
  }

  private forgetUdp(r: UdpRule, c: UdpClient): void {
    r.byClient.delete(c.key);
    this.udpByGuestSide.delete(guestSideKey(c.remote, c.remotePort, c.guest, r.info.rule.guestPort));
    if (c.gatewayPort) this.udpGatewayPorts.delete(c.remotePort);
  }
}

const guestSideKey = (
  remote: number | string,
  remotePort: number,
  guest: number | string,
  guestPort: number,
) => `${remote}:${remotePort}>${guest}:${guestPort}`;

/** an address as the grammar writes it: IPv6 in brackets */
const bracketed = (a: string): string => (a.includes(":") ? `[${a}]` : a);

/** address:port, IPv6 in brackets */
const endpointText = (a: string, port: number): string => `${bracketed(a)}:${port}`;
