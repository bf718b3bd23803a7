/**
 * One `-netdev user`: a user stack on a hub, with its built-in services and NAT.
 * This builds the netdev's parts and is the hub port that carries frames between the
 * hub and the sans-I/O stack. The other jobs live in their own modules:
 * - where a guest datagram or connection goes: the routing table (stack/routes.ts);
 *   here, only the owners that depend on live state are asked around it;
 * - when timers run: one TimerDriver (timer-driver.ts) for the stack, the NAT tables,
 *   the host forwards and TFTP;
 * - what it shows of itself: `snapshot()` (user-snapshot.ts), plain data.
 * Its parts are private; the composition root manages port forwards through
 * `forwards`, a narrow view of the host forwarder.
 */
import type { UserNetdevConfig } from "./config.js";
import { noteFrameBytes } from "./frame-gc.js";
import { type FrameSink, type Port, PortCounters, type PortStats } from "./hub/port.js";
import { internalErrors, type Logger } from "./log.js";
import { dnsOverTcp } from "./proxy/dns-tcp.js";
import { HostDnsUpstream } from "./proxy/dns-upstream.js";
import type { GuestForwarder } from "./proxy/guest-forward.js";
import { type ForwardInfo, HostForwarder } from "./proxy/host-forward.js";
import { type HostNet, nodeHostNet } from "./proxy/host-net.js";
import { HostPipeSession } from "./proxy/host-pipe.js";
import { IcmpEchoNat } from "./proxy/icmp-echo.js";
import { LocalTcpService } from "./proxy/local-tcp-service.js";
import { NatPolicy } from "./proxy/nat-policy.js";
import type { SmbdConnection } from "./proxy/smbd-host.js";
import { TcpRelay } from "./proxy/tcp-relay.js";
import { UdpNat } from "./proxy/udp-nat.js";
import { dhcpConfigFromNetdev } from "./services/dhcp/dhcp-config.js";
import { MemoryLeaseStore } from "./services/dhcp/dhcp-lease.js";
import { FileLeaseStore } from "./services/dhcp/dhcp-lease-file.js";
import { DhcpServer } from "./services/dhcp/dhcp-server.js";
import { DnsForwarder } from "./services/dns/dns-forwarder.js";
import { type GuestNameClaim, LocalNames } from "./services/dns/local-names.js";
import { chooseUpstreams } from "./services/dns/resolv-conf.js";
import type { SmbdHost, SmbdLauncher } from "./services/smb/smbd-launcher.js";
import type { TftpSend, TftpServer } from "./services/tftp/tftp-server.js";
import { type Clock, systemClock } from "./stack/clock.js";
import { ipv6Defaults, type StackConfig } from "./stack/config.js";
import type { GuestTcpConnection } from "./stack/guest-tcp.js";
import { ipv4ReassemblyDefaults } from "./stack/ipv4-reassembler.js";
import { dhcpClientPort, dhcpServerPort, dnsPort, type RoutedServices, RouteTable } from "./stack/routes.js";
import { tcpFlowLimits } from "./stack/tcp/flow-table.js";
import type { TcpEvent } from "./stack/tcp/tcp-endpoint.js";
import { type GuestUdp, UserStack } from "./stack/user-stack.js";
import { BROADCAST_MAC, macToString, parseIpv4, parseMac, prefixToMask } from "./stack/wire/addr.js";
import { IcmpUnreachableCode } from "./stack/wire/icmp.js";
import { type Ipv6Address, parseIpv6 } from "./stack/wire/ipv6-addr.js";
import { TimerDriver } from "./timer-driver.js";
import { takeSnapshot, type UserNetdevSnapshot } from "./user-snapshot.js";

/** a DNS-over-TCP connection with no bytes either way for this long is reset */
const dnsTcpIdleMs = 30_000;

export function stackConfigOf(cfg: UserNetdevConfig): StackConfig {
  const ip = (s: string, what: string): number => {
    const v = parseIpv4(s);
    if (v === undefined) throw new Error(`-netdev user,id=${cfg.id}: ${what}=${s} is not an IPv4 address`);
    return v;
  };
  const guestfwdServers = cfg.guestfwd.map((g) => ip(g.server, "guestfwd server"));
  const stack: StackConfig = {
    net: ip(cfg.net, "net"),
    mask: prefixToMask(cfg.prefixLength),
    host: ip(cfg.host, "host"),
    dns: ip(cfg.dns, "dns"),
    smb: cfg.smb === undefined ? undefined : ip(cfg.smbServer, "smbserver"),
    extraAddresses: guestfwdServers,
    mtu: cfg.mtu,
  };
  if (cfg.ipv4 === false) stack.ipv4 = false;
  if (cfg.ipv6 !== undefined) {
    const ip6 = (s: string, what: string): Ipv6Address => {
      const v = parseIpv6(s);
      if (v === undefined) throw new Error(`-netdev user,id=${cfg.id}: ${what}=${s} is not an IPv6 address`);
      return v;
    };
    stack.ipv6 = {
      ...ipv6Defaults(ip6(cfg.ipv6.prefix, "ipv6-prefix"), cfg.ipv6.prefixLength),
      host: ip6(cfg.ipv6.host, "ipv6-host"),
      dns: ip6(cfg.ipv6.dns, "ipv6-dns"),
      announceDns: cfg.dnsForward !== false,
      dnsSearch: cfg.dnsSearch,
    };
  }
  return stack;
}

export interface UserNetdevOptions {
  clock?: Clock;
  /** wall-clock milliseconds, for DHCP leases that outlive the process */
  wallClock?: () => number;
  hostNet?: HostNet;
  /** where DHCP leases are kept across restarts; memory only when absent */
  stateDir?: string | undefined;
  /** the host's /etc/resolv.conf text, used when no dns-upstream= is given */
  resolvConf?: string | undefined;
  /** how smbd is run for smb=DIR (tests inject a fake) */
  smbdHost?: SmbdHost<SmbdConnection>;
  smbdPath?: string;
}

/** The name guests reach the gateway (the host) by, answered by the DNS forwarder. */
export const gatewayName = "host.usernet.internal";

/** What the composition root (src/forwards.ts) does with a netdev's port forwards. */
export type HostForwards = Pick<HostForwarder, "open" | "add" | "remove" | "list" | "keepsSource" | "close">;
export type { ForwardInfo };

/** The routing table's view of a netdev's configuration. */
export function routedServices(cfg: UserNetdevConfig, stack: StackConfig): RoutedServices {
  return {
    dns: cfg.dnsForward !== false,
    tftp: cfg.tftp !== undefined,
    smb: cfg.smb !== undefined,
    guestfwd: cfg.guestfwd.map((g, i) => ({ addr: stack.extraAddresses[i] ?? 0, port: g.port })),
  };
}

export class UserNetdev implements Port {
  readonly kind = "user";
  private readonly stack: UserStack;
  private readonly dhcp: DhcpServer;
  private readonly udpNat: UdpNat;
  private readonly tcpRelay: TcpRelay;
  private readonly icmp: IcmpEchoNat;
  private readonly hostForwards: HostForwarder;
  /** guestfwd=: guest TCP to SERVER:PORT onto a host socket or a command (from start()) */
  private guestForwards: GuestForwarder | undefined;
  private readonly dns: DnsForwarder;
  private readonly localNames: LocalNames;
  /** tftp=DIR (from start()) */
  private tftp: TftpServer | undefined;
  /** DNS over TCP at the DNS address, port 53 */
  private readonly dnsTcp: LocalTcpService;
  /** smb=DIR: one smbd per connection to the SMB address, with the connection on its stdin (from start()) */
  private smb: SmbdLauncher<SmbdConnection> | undefined;
  private smbTcp: LocalTcpService | undefined;
  private readonly routes: RouteTable;
  private readonly timers: TimerDriver;
  private readonly log: Logger;
  private readonly options: UserNetdevOptions;
  private stopping: Promise<void> = Promise.resolve();
  private readonly dnsUpstream: HostDnsUpstream;
  private readonly stackConfig: StackConfig;
  private receiver: FrameSink | undefined;
  private readonly counters = new PortCounters();
  private readonly clock: Clock;
  private readonly wallClock: () => number;
  private closed = false;

  constructor(
    readonly config: UserNetdevConfig,
    log: Logger,
    options: UserNetdevOptions = {},
  ) {
    this.log = log;
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.wallClock = options.wallClock ?? Date.now;
    this.stackConfig = stackConfigOf(config);
    this.routes = new RouteTable(this.stackConfig, routedServices(config, this.stackConfig));
    this.timers = new TimerDriver(this.clock);
    this.stack = new UserStack(
      this.stackConfig,
      this.clock,
      {
        emit: (frames) => this.deliver(frames),
        udp: (d) => this.routeUdp(d),
        tcp: (conn, ev) => this.routeTcp(conn, ev),
        timersChanged: () => this.timers.schedule(),
        echo: (e) => {
          this.icmp.fromGuest(e, this.clock.now());
          this.timers.schedule();
        },
      },
      {
        tcp: tcpFlowLimits(config.maxFlows, config.maxFlowsPerGuest),
        reassembly: reassemblyLimits(config.reasmMaxDatagrams, config.reasmMaxDatagramsPerGuest),
        guests: config.maxGuestsPerPort === undefined ? {} : { maxPerPort: config.maxGuestsPerPort },
        buffers: bufferLimits(config.bufferMaxBytes, config.bufferMaxBytesPerGuest),
      },
    );
    const store = options.stateDir
      ? new FileLeaseStore(options.stateDir, `dhcp-leases-${config.id}.json`, log)
      : new MemoryLeaseStore();
    this.dhcp = new DhcpServer(dhcpConfigFromNetdev(config), store, log.child({ service: "dhcp" }), (ip) => {
      const mac = this.stack.addressOwner(ip);
      return mac === undefined ? undefined : macToString(mac);
    });
    this.bindLeases();
    const policy = new NatPolicy({
      host: this.stackConfig.host,
      hostLoopback: config.hostLoopback,
      restrict: config.restrict,
      outboundAddr: config.outboundAddr,
    });
    this.tcpRelay = new TcpRelay(options.hostNet ?? nodeHostNet, policy, log.child({ proxy: "tcp" }), () =>
      this.clock.now(),
    );
    this.hostForwards = new HostForwarder({
      gateway: this.stackConfig.host,
      net: this.stackConfig.net,
      mask: this.stackConfig.mask,
      defaultGuest: parseIpv4(config.dhcpStart) ?? 0,
      preserveSource: config.preserveSource ?? false,
      tcp: this.stack.tcp,
      relay: this.tcpRelay,
      sendUdp: (d) => {
        this.stack.sendUdp(d);
        this.timers.schedule();
      },
      drops: this.stack.drops,
      log: log.child({ proxy: "hostfwd" }),
      now: () => this.clock.now(),
    });
    this.icmp = new IcmpEchoNat(
      options.hostNet ?? nodeHostNet,
      policy,
      (e) => this.stack.sendEchoReply(e),
      log.child({ proxy: "icmp" }),
      { maxFlows: config.icmpMaxIds, maxFlowsPerGuest: config.icmpMaxIdsPerGuest },
    );
    this.udpNat = new UdpNat(
      options.hostNet ?? nodeHostNet,
      policy,
      {
        toGuest: (d) => {
          this.stack.sendUdp(d);
          this.timers.schedule();
        },
        unreachable: (to, from, code, quote) => this.stack.sendUnreachable(to, from, code, quote),
        timeExceeded: (to, from, code, quote) => this.stack.sendTimeExceeded(to, from, code, quote),
      },
      log.child({ proxy: "udp" }),
      {
        now: () => this.clock.now(),
        maxFlows: config.udpMaxSockets,
        maxFlowsPerGuest: config.udpMaxSocketsPerGuest,
      },
    );
    const dnsLog = log.child({ service: "dns" });
    const upstreams = chooseUpstreams(config.dnsUpstream, options.resolvConf);
    for (const note of upstreams.notes) dnsLog.warn(note);
    dnsLog.info(
      `DNS upstreams from ${upstreams.source}: ${upstreams.servers.map((s) => `${s.host}:${s.port}`).join(", ") || "none"}`,
    );
    this.localNames = new LocalNames();
    this.localNames.set(gatewayName, this.stackConfig.host);
    this.dnsUpstream = new HostDnsUpstream({ logger: dnsLog, localAddress: config.outboundAddr });
    this.dns = new DnsForwarder({
      upstream: this.dnsUpstream,
      servers: upstreams.servers,
      logger: dnsLog,
      localNames: this.localNames,
      maxInflight: config.dnsMaxQueries,
      maxInflightPerGuest: config.dnsMaxQueriesPerGuest,
    });
    this.dnsTcp = new LocalTcpService(
      {
        name: "dns-tcp",
        open: dnsOverTcp({ resolve: (q, peer) => this.dns.handle(q, "tcp", peer.guest) }),
        idleTimeoutMs: dnsTcpIdleMs,
      },
      dnsLog,
    );
    // the order timers run in when the one timer fires
    this.timers.add({ nextDeadline: () => this.stack.nextDeadline(), fire: () => this.stack.onTimer() });
    this.timers.add({
      nextDeadline: () => this.udpNat.nextDeadline(),
      fire: (now) => this.udpNat.expire(now),
    });
    this.timers.add({ nextDeadline: () => this.icmp.nextDeadline(), fire: (now) => this.icmp.expire(now) });
    this.timers.add({ fire: (now) => this.hostForwards.expire(now) });
  }

  get name(): string {
    return this.config.id;
  }

  /** The netdev's port forwards (command-line and runtime ones), for src/forwards.ts. */
  get forwards(): HostForwards {
    return this.hostForwards;
  }

  /**
   * Counters, leases, bounds and flow counts now, as plain data; the NAT flows
   * themselves too when `flows` is set (a walk over every table).
   */
  snapshot(options: { flows?: boolean } = {}): UserNetdevSnapshot {
    return takeSnapshot(
      {
        stack: this.stack,
        udpNat: this.udpNat,
        icmp: this.icmp,
        tcpRelay: this.tcpRelay,
        dhcp: this.dhcp,
        dns: this.dns,
        tftp: this.tftp,
        drops: this.stats().drops,
      },
      { now: this.clock.now(), wall: this.wallClock() },
      options.flows === true,
    );
  }

  send(frames: readonly Buffer[], from = 0): void {
    if (this.closed) return;
    this.counters.countRx(frames);
    this.deliver(this.stack.input(frames, from));
    this.timers.schedule();
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    noteFrameBytes(bytes);
  }

  /** A hub port left: the guests it carried are forgotten (their leases stay with their MACs). */
  peerLeft(from: number): void {
    this.stack.portLeft(from);
  }

  setReceiver(sink: FrameSink | undefined): void {
    this.receiver = sink;
  }

  /** The stack honours offload marks on what it receives (trusted checksums, super frames). */
  readonly acceptsOffloads = true;

  /** With only offloading peers (a TAP with a vnet header), TCP sends super frames. */
  peersAcceptOffloads(yes: boolean): void {
    this.stack.setOffloads(yes);
  }

  stats(): PortStats {
    const s = this.counters.snapshot();
    return {
      ...s,
      drops: {
        ...s.drops,
        ...this.stack.drops.toJSON(),
        ...this.udpNat.drops.toJSON(),
        ...this.icmp.drops.toJSON(),
      },
    };
  }

  describe(): string {
    const c = this.config;
    return `user stack ${c.net}/${c.prefixLength}, gateway ${c.host}, DNS ${c.dns}, DHCP from ${c.dhcpStart}`;
  }

  /**
   * Checks what must work before the network runs. The port forwards are opened by
   * the composition root (src/forwards.ts), which gives them their ids.
   */
  async start(): Promise<void> {
    // what only some configurations use is loaded only for them (RSS: see src/cli/main.ts)
    const { config, log, options } = this;
    const hostNet = options.hostNet ?? nodeHostNet;
    if (config.guestfwd.length > 0) {
      const { GuestForwarder } = await import("./proxy/guest-forward.js");
      this.guestForwards = new GuestForwarder(config.guestfwd, {
        gateway: this.stackConfig.host,
        hostNet,
        log: log.child({ proxy: "guestfwd" }),
        now: () => this.clock.now(),
      });
    }
    if (config.tftp !== undefined) {
      const [{ TftpServer }, { TftpRoot }] = await Promise.all([
        import("./services/tftp/tftp-server.js"),
        import("./services/tftp/tftp-root.js"),
      ]);
      const tftp = new TftpServer({
        files: new TftpRoot(config.tftp),
        root: config.tftp,
        logger: log.child({ service: "tftp" }),
        mtu: config.mtu,
        maxTransfers: config.tftpMaxSessions,
        maxTransfersPerGuest: config.tftpMaxSessionsPerGuest,
      });
      this.tftp = tftp;
      this.timers.add({
        nextDeadline: () => tftp.nextDeadline(),
        fire: (now) => {
          tftp
            .onTimer(now)
            .then((sends) => this.sendTftp(sends))
            .catch(internalErrors.handler("TFTP retransmission"));
        },
      });
    }
    if (config.smb !== undefined) {
      const smbLog = log.child({ service: "smb" });
      const [{ SmbdLauncher }, { nodeSmbdHost }, { userInfo }] = await Promise.all([
        import("./services/smb/smbd-launcher.js"),
        import("./proxy/smbd-host.js"),
        import("node:os"),
      ]);
      const smb = new SmbdLauncher({
        shareDir: config.smb,
        user: userInfo().username,
        host: options.smbdHost ?? nodeSmbdHost(smbLog),
        smbdPath: options.smbdPath,
        log: smbLog,
      });
      this.smb = smb;
      this.smbTcp = new LocalTcpService(
        {
          name: "smb",
          open: async (_peer, io) => {
            const attach = await smb.open();
            const pipe = new HostPipeSession(io);
            pipe.socket = attach((e) => pipe.fromHost(e));
            return pipe;
          },
        },
        smbLog,
      );
      // smb= without smbd (or with an unusable directory) stops start-up, as in QEMU
      await smb.check();
    }
    // leases loaded from --state-dir bring their names back
    this.learnHostnames();
  }

  close(): void {
    this.closed = true;
    this.hostForwards.close().catch(internalErrors.handler("closing the forwards"));
    this.timers.close();
    this.udpNat.closeAll();
    this.tcpRelay.closeAll();
    this.guestForwards?.closeAll();
    this.dnsTcp.closeAll();
    this.smbTcp?.closeAll();
    // the lease file's last write, so a clean stop loses no lease
    this.stopping = Promise.all([this.smb?.close(), this.dhcp.flush()]).then(() => undefined);
    this.icmp.closeAll();
    this.dnsUpstream.close();
  }

  /** Settles when what close() started (stopping smbd, the last lease write) is done. */
  whenClosed(): Promise<void> {
    return this.stopping;
  }

  private routeTcp(conn: GuestTcpConnection, ev: TcpEvent): void {
    if (ev.type !== "connect-request") {
      // an open connection stays with whoever took it (the relay's are the many)
      if (
        this.routes.hasGuestForwards &&
        this.routes.tcp(conn.remoteAddr, conn.remotePort) === "guestfwd" &&
        this.guestForwards
      )
        return this.guestForwards.event(conn, ev);
      if (this.dnsTcp.owns(conn)) return this.dnsTcp.event(conn, ev);
      if (this.smbTcp?.owns(conn)) return this.smbTcp.event(conn, ev);
      return this.tcpRelay.event(conn, ev);
    }
    switch (this.routes.tcp(conn.remoteAddr, conn.remotePort)) {
      case "guestfwd":
        if (this.guestForwards) return this.guestForwards.event(conn, ev);
        break;
      case "dns":
        return this.dnsTcp.event(conn, ev);
      case "smb":
        if (this.smbTcp) return this.smbTcp.event(conn, ev);
        break;
      case "no-service":
        // a virtual address with nothing listening on this port
        this.stack.drops.drop("tcp-no-service");
        return conn.refuse();
    }
    this.tcpRelay.event(conn, ev);
  }

  private routeUdp(d: GuestUdp): void {
    const route = this.routes.udp(d.dst, d.dstPort);
    switch (route) {
      case "dhcp":
        return this.toDhcp(d);
      case "broadcast":
        // broadcasts are not forwarded; only the DHCP server listens on them
        this.stack.drops.drop("udp-broadcast-not-forwarded");
        return;
      case "dns":
        return this.toDns(d);
    }
    // replies on host forwards go back to the host client, whatever their destination
    if (this.hostForwards.fromGuestUdp(d.src, d.srcPort, d.dst, d.dstPort, d.payload)) return;
    switch (route) {
      case "tftp":
        if (this.tftp) return this.toTftp(this.tftp, d);
        break;
      case "gateway":
        // a running TFTP transfer's own port
        if (this.tftp?.ownsPort(d.dstPort)) return this.toTftp(this.tftp, d);
        break;
      case "no-service":
        // a virtual address with no service on this port: what a real host answers
        this.stack.drops.drop("udp-no-service");
        this.stack.sendUnreachable(d.src, d.dst, IcmpUnreachableCode.port, d.quote());
        return;
    }
    this.udpNat.fromGuest(d, this.clock.now());
  }

  private toDns(d: GuestUdp): void {
    // the payload is a view of a frame; the forwarder copies what it keeps
    const guest = { src: d.src, srcPort: d.srcPort };
    void this.dns
      .handle(d.payload, "udp", d.guest)
      .then((answer) => {
        if (!answer || this.closed) return;
        this.stack.sendUdp({
          src: this.stackConfig.dns,
          srcPort: dnsPort,
          dst: guest.src,
          dstPort: guest.srcPort,
          payload: answer,
        });
        this.timers.schedule();
      })
      .catch(internalErrors.handler("a DNS reply to a guest"));
  }

  private toTftp(tftp: TftpServer, d: GuestUdp): void {
    const req = {
      client: { addr: d.src, port: d.srcPort },
      guest: d.guest,
      serverPort: d.dstPort,
      payload: Buffer.from(d.payload),
    };
    tftp
      .handle(req, this.clock.now())
      .then((sends) => this.sendTftp(sends))
      .catch(internalErrors.handler("a TFTP request"));
  }

  private sendTftp(sends: TftpSend[]): void {
    if (this.closed) return;
    for (const s of sends) {
      this.stack.sendUdp({
        src: this.stackConfig.host,
        srcPort: s.fromPort,
        dst: s.to.addr,
        dstPort: s.to.port,
        payload: s.payload,
      });
    }
    this.timers.schedule();
  }

  private toDhcp(d: GuestUdp): void {
    const reply = this.dhcp.handle(d.payload, this.wallClock());
    // after every message: a RELEASE has no reply but ends a lease and its name
    this.learnHostnames();
    this.bindLeases();
    if (!reply) return;
    const to = reply.to;
    const later = () => {
      send();
      this.timers.schedule();
    };
    const send = () => {
      if (this.closed) return;
      this.stack.sendUdp({
        src: this.stackConfig.host,
        srcPort: dhcpServerPort,
        dst: to === "broadcast" ? 0xffffffff : to.ip,
        dstPort: dhcpClientPort,
        dstMac: to === "broadcast" ? BROADCAST_MAC : to.mac,
        payload: reply.payload,
      });
    };
    // a reply that changed the leases goes out once they are durable (state-file.ts)
    const saved = this.dhcp.pendingSave();
    if (saved === undefined) send();
    else saved.then(later).catch(internalErrors.handler("a DHCP reply after its lease write"));
  }

  /**
   * A leased address belongs to the lease's MAC until the lease ends: the stack drops
   * that address from any other MAC meanwhile (user-stack.ts, source addresses).
   */
  private bindLeases(): void {
    const wall = this.wallClock();
    const now = this.clock.now();
    for (const lease of this.dhcp.leases(wall)) {
      if (lease.state !== "bound" && lease.state !== "bootp") continue;
      const address = parseIpv4(lease.ip);
      const mac = parseMac(lease.mac);
      if (address === undefined || mac === undefined) continue;
      const until = lease.state === "bootp" ? Number.POSITIVE_INFINITY : now + (lease.expiresAt - wall);
      this.stack.bindAddress(address, mac, until);
    }
  }

  /**
   * Guests' DHCP host names become DNS names, as a home router does, by the rule in
   * local-names.ts (one label, first holder keeps it, configured names win); claims
   * turned down are counted as DHCP "ignored" by reason.
   */
  private learnHostnames(): void {
    const claims: GuestNameClaim[] = [];
    for (const lease of this.dhcp.leases(this.wallClock())) {
      const address = parseIpv4(lease.ip);
      if (lease.hostname && lease.state === "bound" && address !== undefined)
        claims.push({ owner: lease.mac, hostname: lease.hostname, address });
    }
    for (const why of this.localNames.syncGuests(claims, this.config.domainName))
      this.dhcp.countIgnored(`hostname-${why}`);
  }

  private deliver(frames: Buffer[]): void {
    if (frames.length === 0) return;
    let bytes = 0;
    for (const f of frames) {
      this.counters.countTx(f);
      bytes += f.length;
    }
    if (this.receiver) this.receiver(frames);
    else this.counters.drop("not-attached", frames.length);
    noteFrameBytes(bytes);
  }
}

/** reasm-max-datagrams= and its -per-guest as given: either alone; the per-guest one at most the total. */
function reassemblyLimits(
  total: number | undefined,
  perGuest: number | undefined,
): { maxDatagrams: number; maxDatagramsPerSource: number } {
  const maxDatagrams = total ?? Math.max(ipv4ReassemblyDefaults.maxDatagrams, perGuest ?? 0);
  return {
    maxDatagrams,
    maxDatagramsPerSource: Math.min(maxDatagrams, perGuest ?? ipv4ReassemblyDefaults.maxDatagramsPerSource),
  };
}

/** buffer-max-bytes= and its -per-guest as given, the same way. */
function bufferLimits(
  total: number | undefined,
  perGuest: number | undefined,
): { max: number; perGuest: number } {
  const max = total ?? Math.max(bufferDefaults.max, perGuest ?? 0);
  return { max, perGuest: Math.min(max, perGuest ?? bufferDefaults.perGuest) };
}

const bufferDefaults = { max: 512 * 1024 * 1024, perGuest: 128 * 1024 * 1024 };
