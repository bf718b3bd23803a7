import { EventEmitter } from "node:events";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { defaultUserNetdev } from "../../src/cli/netdev-user.js";
import type { UserNetdevConfig } from "../../src/config.js";
import { createControl } from "../../src/control.js";
import { HubRegistry } from "../../src/hub/hub.js";
import { silentLogger } from "../../src/log.js";
import { UserNetdev } from "../../src/user-netdev.js";
import { ScriptedPort } from "./api/fake-facade.js";

/** An ARP request from the guest 10.0.2.15 for the gateway 10.0.2.2. */
function arpRequest(): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]).copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14);
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20);
  Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]).copy(f, 22);
  Buffer.from([10, 0, 2, 15]).copy(f, 28);
  Buffer.from([10, 0, 2, 2]).copy(f, 38);
  return f;
}

function world(over: Partial<UserNetdevConfig> = {}) {
  const hubs = new HubRegistry();
  const cfg = { ...defaultUserNetdev("u0", 0), dnsUpstream: [{ host: "127.0.0.1", port: 5353 }], ...over };
  const user = new UserNetdev(cfg, silentLogger);
  const guest = new ScriptedPort("g");
  hubs.get(0).attach(user);
  hubs.get(0).attach(guest);
  const control = createControl({
    hubs,
    users: [user],
    handles: [],
    log: silentLogger,
    version: "1.2.3",
    open: async () => {
      throw new Error("cannot listen on 127.0.0.1:1: EACCES");
    },
  });
  return { hubs, user, guest, control, close: () => user.close() };
}

describe("the control facade over a real user netdev", () => {
  it("status shows the user netdev's addresses and counters", () => {
    const w = world();
    try {
      w.guest.emit([arpRequest()]);
      const s = w.control.status();
      expect(s.version).toBe("1.2.3");
      const u = s.netdevs.find((n) => n.id === "u0");
      expect(u).toMatchObject({
        kind: "user",
        hub: 0,
        ports: ["u0"],
        user: {
          net: "10.0.2.0",
          prefixLength: 24,
          host: "10.0.2.2",
          dns: "10.0.2.3",
          dhcpStart: "10.0.2.15",
          maxFlows: 65536,
          maxFlowsPerGuest: 32768,
        },
        counters: {
          stack: { rxFrames: 1, arpReplies: 1 },
          flows: { tcp: 0, udp: 0, icmp: 0 },
          tcp: { refused: 0, timeWait: 0 },
          leases: 0,
        },
      });
      expect(s.ports.find((p) => p.name === "u0")).toMatchObject({ kind: "user", netdev: "u0" });
      expect(s.ports.find((p) => p.name === "g")?.stats.txFrames).toBe(1);
      const stats = w.control.userStats();
      expect(stats[0]).toMatchObject({ netdev: "u0", stack: { arpReplies: 1 }, tcp: { opened: 0 } });
      expect(stats[0]?.dns.queries).toBe(0);
      expect(stats[0]?.tftp).toBeUndefined();
      expect(w.control.leases()).toEqual([
        { netdev: "u0", hub: 0, leases: [], leases6: [], neighbours6: [] },
      ]);
      expect(w.control.flows()).toEqual({ tcp: [], udp: [], icmp: [] });
    } finally {
      w.close();
    }
  });

  it("the -per-guest bounds reach the NATs, the DNS forwarder, TFTP, reassembly, the byte budget and the guests per port, and show in status and stats", async () => {
    const w = world({
      udpMaxSockets: 100,
      udpMaxSocketsPerGuest: 10,
      icmpMaxIds: 50,
      icmpMaxIdsPerGuest: 5,
      dnsMaxQueries: 40,
      dnsMaxQueriesPerGuest: 4,
      tftp: tmpdir(),
      tftpMaxSessions: 30,
      tftpMaxSessionsPerGuest: 3,
      reasmMaxDatagrams: 32,
      reasmMaxDatagramsPerGuest: 8,
      bufferMaxBytes: 4_000_000,
      bufferMaxBytesPerGuest: 1_000_000,
      maxGuestsPerPort: 7,
    });
    try {
      await w.user.start();
      const bounds = {
        udpSockets: { total: 100, perGuest: 10, refused: 0 },
        icmpIds: { total: 50, perGuest: 5, refused: 0 },
        dnsQueries: { total: 40, perGuest: 4, refused: 0 },
        tftpSessions: { total: 30, perGuest: 3, refused: 0 },
        reassembly: { total: 32, perGuest: 8, refused: 0 },
        bufferBytes: { total: 4_000_000, perGuest: 1_000_000, refused: 0 },
        guests: { total: 7, perGuest: 1, refused: 0 },
      };
      expect(w.control.status().netdevs[0]?.user?.bounds).toEqual(bounds);
      expect(w.control.userStats()[0]?.bounds).toEqual(bounds);
    } finally {
      w.close();
    }
  });

  it("max-flows= and max-flows-per-guest= reach the flow table and show in status and stats", () => {
    const w = world({ maxFlows: 500, maxFlowsPerGuest: 100 });
    try {
      expect(w.control.status().netdevs[0]?.user).toMatchObject({ maxFlows: 500, maxFlowsPerGuest: 100 });
      expect(w.control.userStats()[0]).toMatchObject({
        tcpLimits: { maxFlows: 500, maxFlowsPerGuest: 100, maxTimeWait: 16384 },
        timeWait: { now: 0, recycled: 0 },
      });
    } finally {
      w.close();
    }
  });

  it("refuses to remove a user netdev or unknown ports, and reports bind failures", async () => {
    const w = world();
    try {
      await expect(w.control.closePort("u0")).rejects.toMatchObject({ reason: "not-removable" });
      await expect(w.control.closePort("g")).rejects.toMatchObject({ reason: "not-found" });
      await expect(
        w.control.openPort(0, {
          type: "stream",
          id: "",
          hub: 0,
          server: true,
          addr: { type: "inet", host: "127.0.0.1", port: 1 },
          reconnect: 0,
        }),
      ).rejects.toMatchObject({ reason: "bind-failed", message: /EACCES/ });
      await expect(
        w.control.openPort(0, {
          type: "stream",
          id: "u0",
          hub: 0,
          server: true,
          addr: { type: "inet", host: "127.0.0.1", port: 1 },
          reconnect: 0,
        }),
      ).rejects.toMatchObject({ reason: "id-taken" });
      await expect(w.control.openPort(4, {} as never)).rejects.toMatchObject({ reason: "not-found" });
    } finally {
      w.close();
    }
  });

  it("a capture joins the hub, sees the guest's frames and the stack's answer, and leaves when stopped", () => {
    const w = world();
    try {
      const sink = Object.assign(new EventEmitter(), {
        chunks: [] as Buffer[],
        writableLength: 0,
        write(c: Buffer) {
          this.chunks.push(c);
          return true;
        },
        end() {},
      });
      expect(() => w.control.capture(7, sink)).toThrow(/no hub 7/);
      const c = w.control.capture(0, sink);
      expect(
        w.hubs
          .get(0)
          .ports()
          .map((p) => p.name),
      ).toEqual(["u0", "g", c.port]);
      expect(() => w.control.closePort(c.port)).not.toThrow();
      const c2 = w.control.capture(0, sink);
      w.guest.emit([arpRequest()]);
      expect(w.control.hubPorts(0)?.find((p) => p.name === c2.port)?.stats.txFrames).toBe(2);
      c2.stop();
      expect(
        w.hubs
          .get(0)
          .ports()
          .map((p) => p.name),
      ).toEqual(["u0", "g"]);
    } finally {
      w.close();
    }
  });
});
