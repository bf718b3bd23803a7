/**
 * A facade for API tests: the real control (src/control.ts) over a real hub registry
 * with scripted ports, canned user-netdev views, and an in-memory forwards table that
 * behaves like the real one's contract (ids never reused; "conflict" for a second rule
 * on the same host socket; "invalid" for an unknown netdev).
 */
import type { UsernetService } from "../../../src/api/service.js";
import type { HostForward } from "../../../src/config.js";
import { HubRegistry } from "../../../src/hub/hub.js";
import { type FrameSink, type Port, PortCounters, type PortStats } from "../../../src/hub/port.js";
import { silentLogger } from "../../../src/log.js";
import type { NetdevHandle, PortNetdevConfig } from "../../../src/ports/netdev.js";
import { createControl, ForwardError, type ForwardView, type UserNetdevStats } from "../../../src/usernet.js";

/** A port a test drives: `emit` sends frames into the hub, `sent` records what it got. */
export class ScriptedPort implements Port {
  readonly sent: Buffer[] = [];
  private sink: FrameSink | undefined;
  private readonly counters = new PortCounters();
  closed = false;
  constructor(
    readonly name: string,
    readonly kind = "scripted",
  ) {}
  emit(frames: Buffer[]): void {
    this.counters.countRx(frames);
    this.sink?.(frames);
  }
  send(frames: readonly Buffer[]): void {
    for (const f of frames) {
      this.sent.push(f);
      this.counters.countTx(f);
    }
  }
  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }
  stats(): PortStats {
    const s = this.counters.snapshot();
    return { ...s, drops: { "tx-queue-full": 2 } };
  }
  describe(): string {
    return `scripted ${this.name}`;
  }
  close(): void {
    this.closed = true;
  }
}

export const cannedUserStats: UserNetdevStats = {
  netdev: "user0",
  hub: 0,
  stack: { rxFrames: 10, txFrames: 9, arpReplies: 2, echoReplies: 3, ignored: 1 },
  drops: { "ipv4-bad-checksum": 4, "tcp-no-service": 1 },
  tcp: {
    opened: 5,
    refused: 0,
    resets: 1,
    retransmittedSegments: 12,
    timeouts: 2,
    fastRetransmits: 3,
    outOfOrderSegments: 4,
    duplicateSegments: 5,
    windowProbes: 6,
  },
  tcpLimits: { maxFlows: 65536, maxFlowsPerGuest: 32768, maxTimeWait: 16384 },
  bounds: {
    udpSockets: { total: 4096, perGuest: 1024, refused: 3 },
    icmpIds: { total: 1024, perGuest: 64, refused: 0 },
    guests: { total: 64, perGuest: 1, refused: 0 },
    bufferBytes: { total: 536870912, perGuest: 134217728, refused: 0 },
    dnsQueries: { total: 256, perGuest: 64, refused: 2 },
    tftpSessions: { total: 64, perGuest: 8, refused: 1 },
    reassembly: { total: 64, perGuest: 16, refused: 0 },
  },
  timeWait: { now: 8, entered: 20, recycled: 3, reused: 1, acks: 2 },
  relay: { connects: 5, refused: 1, failed: 0, denied: 0 },
  flows: { tcp: 2, udp: 1, icmp: 0 },
  icmp: { echoesSent: 7, repliesReceived: 6 },
  dhcp: {
    offers: 1,
    acks: 1,
    naks: 0,
    releases: 0,
    declines: 0,
    informs: 0,
    bootp: 0,
    poolExhausted: 0,
    saveFailures: 0,
    malformed: { "dhcp-truncated": 1 },
    ignored: {},
    leases: { bound: 1 },
  },
  dhcpv6: {
    solicits: 1,
    advertises: 1,
    requests: 1,
    renews: 0,
    rebinds: 0,
    releases: 0,
    declines: 0,
    confirms: 0,
    informationRequests: 2,
    replies: 3,
    noAddrsAvail: 0,
    saveFailures: 0,
    malformed: { "dhcpv6-too-short": 1 },
    ignored: {},
    leases: { bound: 1 },
  },
  neighbours6: 1,
  dns: {
    queries: 3,
    localAnswers: 1,
    forwarded: 2,
    answered: 2,
    truncated: 0,
    servfail: 0,
    formerr: 0,
    notimp: 0,
    tcpRetries: 0,
    dns64: 0,
    inflight: 0,
    dropped: {},
    upstreamFailures: { timeout: 1 },
  },
  tftp: {
    root: "/srv/tftp",
    active: 0,
    started: 2,
    completed: 1,
    timedOut: 0,
    abortedByClient: 0,
    failed: 1,
    refused: { "tftp-not-found": 1 },
    ignored: {},
    unknownTransferId: 0,
    blocksSent: 12,
    bytesSent: 6000,
    retransmittedBlocks: 1,
  },
};

export class FakeForwards {
  private nextId = 1;
  readonly rules: ForwardView[] = [];
  list(): ForwardView[] {
    return this.rules.map((r) => ({ ...r }));
  }
  async add(netdevId: string | undefined, rule: HostForward): Promise<ForwardView> {
    const netdev = netdevId ?? "user0";
    if (netdev !== "user0") throw new ForwardError("invalid", `no user netdev ${netdev}`);
    if (
      rule.hostPort !== 0 &&
      this.rules.some((r) => r.proto === rule.proto && r.hostPort === rule.hostPort)
    ) {
      throw new ForwardError("conflict", `${rule.proto} host port ${rule.hostPort} is forwarded already`);
    }
    if (rule.hostPort === 1) throw new ForwardError("bind-failed", "cannot bind 0.0.0.0:1: EACCES");
    const v: ForwardView = {
      id: this.nextId++,
      netdev,
      proto: rule.proto,
      hostAddr: rule.hostAddr === "" ? "0.0.0.0" : rule.hostAddr,
      hostPort: rule.hostPort,
      guestAddr: rule.guestAddr === "" ? "10.0.2.15" : rule.guestAddr,
      guestPort: rule.guestPort,
      preserveSource: rule.preserveSource ?? false,
      bound: { address: "0.0.0.0", port: rule.hostPort === 0 ? 40000 : rule.hostPort },
    };
    this.rules.push(v);
    return v;
  }
  async remove(id: number): Promise<boolean> {
    const i = this.rules.findIndex((r) => r.id === id);
    if (i < 0) return false;
    this.rules.splice(i, 1);
    return true;
  }
}

export interface FakeWorld {
  facade: UsernetService;
  hubs: HubRegistry;
  ports: ScriptedPort[];
  forwards: FakeForwards;
  opened: PortNetdevConfig[];
  handles: NetdevHandle[];
}

/** hub 0 with ports a and b, hub 3 with port c; openPort makes scripted handles. */
export function fakeWorld(): FakeWorld {
  const hubs = new HubRegistry();
  const a = new ScriptedPort("a");
  const b = new ScriptedPort("b", "stream-listen");
  const c = new ScriptedPort("c");
  hubs.get(0).attach(a);
  hubs.get(0).attach(b);
  hubs.get(3).attach(c);
  const opened: PortNetdevConfig[] = [];
  const handles: NetdevHandle[] = [
    { id: "s0", kind: "stream-listen", describe: () => "listening", ports: () => [b], close: async () => {} },
  ];
  const control = createControl({
    hubs,
    users: [],
    handles,
    log: silentLogger,
    version: "9.9.9",
    open: async (cfg, hub) => {
      if (cfg.type === "stream" && cfg.addr.type === "inet" && cfg.addr.port === 1) {
        throw new Error(`${cfg.id}: cannot listen on 127.0.0.1:1: EACCES`);
      }
      opened.push(cfg);
      const port = new ScriptedPort(`${cfg.id}#1`, `${cfg.type}-x`);
      hub.attach(port);
      let closed = false;
      return {
        id: cfg.id,
        kind: `${cfg.type}-x`,
        describe: () => "scripted handle",
        ports: () => (closed ? [] : [port]),
        close: async () => {
          closed = true;
          hub.detach(port);
        },
      };
    },
  });
  const forwards = new FakeForwards();
  const facade: UsernetService = {
    ...control,
    leases: () => [
      {
        netdev: "user0",
        hub: 0,
        leases: [
          {
            mac: "52:54:00:12:34:56",
            ip: "10.0.2.15",
            state: "bound",
            expiresAt: 1_800_000_000_000,
            hostname: "guest",
            static: false,
          },
        ],
        leases6: [
          {
            mac: "52:54:00:12:34:56",
            duid: "00030001525400123456",
            iaid: 1,
            ip: "fec0::15",
            state: "bound",
            expiresAt: 1_800_000_000_000,
          },
        ],
        neighbours6: [{ address: "fec0::15", mac: "52:54:00:12:34:56", expiresInMs: 30_000 }],
      },
    ],
    flows: () => ({
      tcp: [
        {
          netdev: "user0",
          guest: "10.0.2.15:40000",
          remote: "10.0.2.2:80",
          host: "127.0.0.1:80",
          state: "open",
          toHostBytes: 100,
          toGuestBytes: 2000,
          ageMs: 1500,
        },
      ],
      udp: [],
      icmp: [],
    }),
    userStats: () => [cannedUserStats],
    forwards,
  };
  return { facade, hubs, ports: [a, b, c], forwards, opened, handles };
}
