/**
 * The forwards facade over real user netdevs and real loopback sockets: ids, add and
 * remove at run time, refusals by reason, persistence across a restart, and what a
 * forwarded flow looks like to the guest (frames the netdev emits).
 */
import dgram from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { defaultUserNetdev } from "../../src/cli/netdev-user.js";
import type { HostForward, UserNetdevConfig } from "../../src/config.js";
import { ForwardError, Forwards } from "../../src/forwards.js";
import type { Logger } from "../../src/log.js";
import { virtualMac } from "../../src/stack/config.js";
import { parseIpv4, parseMac } from "../../src/stack/wire/addr.js";
import { ArpOp, arpPacketLength, encodeArp } from "../../src/stack/wire/arp.js";
import { decodeEthernet, EtherType, encodeEthernet } from "../../src/stack/wire/ethernet.js";
import { decodeIpv4, encodeIpv4, IpProto } from "../../src/stack/wire/ipv4.js";
import { decodeTcp } from "../../src/stack/wire/tcp.js";
import { decodeUdp, encodeUdp } from "../../src/stack/wire/udp.js";
import { UserNetdev } from "../../src/user-netdev.js";

const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
const ip = (s: string) => parseIpv4(s) ?? 0;
const guestMac = parseMac("52:54:00:12:34:56") ?? Buffer.alloc(6);

function userConfig(id: string, over: Partial<UserNetdevConfig> = {}): UserNetdevConfig {
  return { ...defaultUserNetdev(id, 0), dnsUpstream: [{ host: "127.0.0.1", port: 9 }], ...over };
}

const rule = (over: Partial<HostForward> = {}): HostForward => ({
  proto: "tcp",
  hostAddr: "127.0.0.1",
  hostPort: 0,
  guestAddr: "",
  guestPort: 80,
  ...over,
});

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "usernet-fwd-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function netdev(id = "u0", over: Partial<UserNetdevConfig> = {}): UserNetdev {
  const u = new UserNetdev(userConfig(id, over), log);
  cleanups.push(async () => {
    u.close();
    await u.forwards.close();
  });
  return u;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function rejection(p: Promise<unknown>): Promise<ForwardError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ForwardError);
    return e as ForwardError;
  }
  throw new Error("expected a rejection");
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** whether a TCP connect to 127.0.0.1:port is refused */
function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => {
      c.destroy();
      resolve(false);
    });
    c.once("error", () => resolve(true));
  });
}

describe("forwards facade", () => {
  it("numbers command-line forwards from 1, adds and removes at run time, never reuses an id", async () => {
    const u = netdev("u0", { hostfwd: [rule({ guestPort: 22 })] });
    const f = await Forwards.open([u], undefined, log);
    const [cli] = f.list();
    expect(cli).toMatchObject({
      id: 1,
      netdev: "u0",
      proto: "tcp",
      hostAddr: "127.0.0.1",
      guestAddr: "10.0.2.15",
    });
    expect(cli?.bound?.port).toBeGreaterThan(0);

    const a = await f.add(undefined, rule({ proto: "udp", guestAddr: "10.0.2.20", guestPort: 53 }));
    expect(a).toMatchObject({
      id: 2,
      proto: "udp",
      guestAddr: "10.0.2.20",
      guestPort: 53,
      preserveSource: false,
    });
    expect(f.list().map((v) => v.id)).toEqual([1, 2]);

    expect(await f.remove(2)).toBe(true);
    expect(await f.remove(2)).toBe(false);
    expect(await f.remove(99)).toBe(false);
    const b = await f.add("u0", rule());
    expect(b.id).toBe(3);
    // a command-line forward can be removed as well (it comes back at the next start)
    expect(await f.remove(1)).toBe(true);
    expect(f.list().map((v) => v.id)).toEqual([3]);
  });

  it("reconcileConfigured (a reload): keeps open rules and their ids, closes dropped ones, binds new ones, leaves runtime ones", async () => {
    const keep = rule({ hostPort: await freePort(), guestPort: 22 });
    const drop = rule({ hostPort: await freePort(), guestPort: 23 });
    const u = netdev("u0", { hostfwd: [keep, drop] });
    const f = await Forwards.open([u], undefined, log);
    const runtime = await f.add("u0", rule({ guestPort: 8080 }));
    expect(f.list().map((v) => v.id)).toEqual([1, 2, 3]);

    const fresh = rule({ hostPort: await freePort(), guestPort: 24 });
    const r = await f.reconcileConfigured("u0", [{ ...keep }, fresh]);
    expect(r.removed.map((v) => v.id)).toEqual([2]);
    expect(r.added).toEqual([expect.objectContaining({ id: 4, guestPort: 24, bound: expect.anything() })]);
    expect(f.list().map((v) => v.id)).toEqual([1, runtime.id, 4]);
    // the dropped rule's port is closed, the kept one still answers
    await expect(connectRefused(drop.hostPort)).resolves.toBe(true);
    await expect(connectRefused(keep.hostPort)).resolves.toBe(false);

    // the same list again changes nothing; an unknown netdev is ignored
    expect(await f.reconcileConfigured("u0", [keep, fresh])).toEqual({ added: [], removed: [] });
    expect(await f.reconcileConfigured("nope", [keep])).toEqual({ added: [], removed: [] });
  });

  it("the listener goes with remove(): new clients are refused at once", async () => {
    const u = netdev();
    const f = await Forwards.open([u], undefined, log);
    const v = await f.add(undefined, rule());
    const port = v.bound?.port ?? 0;
    await f.remove(v.id);
    await new Promise((r) => setTimeout(r, 50));
    const code = await new Promise<string>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => resolve("connected"));
      s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
    });
    expect(code).toBe("ECONNREFUSED");
  });

  it("refuses bad rules, duplicates and unbindable ports by reason, and changes nothing", async () => {
    const u = netdev();
    const f = await Forwards.open([u], undefined, log);
    const port = await freePort();
    await f.add(undefined, rule({ hostPort: port }));
    const before = f.list();

    expect((await rejection(f.add(undefined, rule({ guestPort: 0 })))).reason).toBe("invalid");
    expect((await rejection(f.add(undefined, rule({ hostPort: 70000 })))).reason).toBe("invalid");
    expect((await rejection(f.add(undefined, rule({ guestAddr: "192.168.1.5" })))).reason).toBe("invalid");
    expect((await rejection(f.add(undefined, rule({ guestAddr: "10.0.2.2" })))).reason).toBe("invalid");
    expect((await rejection(f.add(undefined, rule({ hostAddr: "nope" })))).reason).toBe("invalid");
    expect((await rejection(f.add("u9", rule()))).reason).toBe("invalid");
    expect((await rejection(f.add(undefined, rule({ hostPort: port, guestPort: 81 })))).reason).toBe(
      "conflict",
    );
    // every address overlaps 127.0.0.1
    expect((await rejection(f.add(undefined, rule({ hostAddr: "", hostPort: port })))).reason).toBe(
      "conflict",
    );
    // the same port over the other protocol is another socket
    await f.add(undefined, rule({ proto: "udp", hostPort: port }));

    const blocker = net.createServer();
    const taken = await freePort();
    await new Promise<void>((r) => blocker.listen(taken, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())));
    const e = await rejection(f.add(undefined, rule({ hostPort: taken })));
    expect(e.reason).toBe("bind-failed");
    expect(e.message).toMatch(/EADDRINUSE/);
    expect(f.list().map((v) => v.id)).toEqual([...before.map((v) => v.id), 2]);
    // the failed add spent its id all the same
    expect((await f.add(undefined, rule())).id).toBe(4);
  });

  it("runtime forwards survive a restart with their ids; command-line ones are not stored", async () => {
    const dir = tempDir();
    const cliRule = rule({ guestPort: 22 });
    const u1 = netdev("u0", { hostfwd: [cliRule] });
    const f1 = await Forwards.open([u1], dir, log);
    const p1 = await freePort();
    const a = await f1.add(undefined, rule({ hostPort: p1, preserveSource: true }));
    const b = await f1.add(undefined, rule({ proto: "udp", guestPort: 7 }));
    const c = await f1.add(undefined, rule({ guestPort: 8080 }));
    await f1.remove(b.id);
    await f1.flush();
    const stored = JSON.parse(readFileSync(join(dir, "forwards.json"), "utf8"));
    expect(stored).toMatchObject({ version: 1, nextId: 5 });
    expect(stored.forwards.map((s: { id: number }) => s.id)).toEqual([a.id, c.id]);
    u1.close();
    await u1.forwards.close();

    const u2 = netdev("u0", { hostfwd: [cliRule] });
    const f2 = await Forwards.open([u2], dir, log);
    const ids = f2.list().map((v) => v.id);
    // the command-line rule takes the next fresh id; stored ones keep theirs
    expect(ids).toEqual([a.id, c.id, 5]);
    const restored = f2.list().find((v) => v.id === a.id);
    expect(restored).toMatchObject({ hostPort: p1, preserveSource: true, bound: { port: p1 } });
    expect((await f2.add(undefined, rule())).id).toBe(6);
  });

  it("answers add and remove only once durable; a failed write undoes the change and says so", async () => {
    const dir = join(tempDir(), "state");
    const u = netdev("u0");
    const f = await Forwards.open([u], dir, log);
    const a = await f.add(undefined, rule({ guestPort: 22 }));
    // the file is on disk when add resolves: nothing to flush
    expect(JSON.parse(readFileSync(join(dir, "forwards.json"), "utf8")).forwards).toHaveLength(1);
    // the state directory becomes a file: every write fails from now on
    rmSync(dir, { recursive: true, force: true });
    writeFileSync(dir, "not a directory");
    const e = await rejection(f.add(undefined, rule({ guestPort: 23 })));
    expect(e.reason).toBe("state-write-failed");
    expect(f.list().map((v) => v.id)).toEqual([a.id]);
    expect((await rejection(f.remove(a.id))).reason).toBe("state-write-failed");
    expect(f.list().map((v) => v.id)).toEqual([a.id]);
    u.close();
    await u.forwards.close();
  });

  it("stored forwards of a netdev that is gone stay in the file", async () => {
    const dir = tempDir();
    const f1 = await Forwards.open([netdev("a")], dir, log);
    await f1.add("a", rule());
    const f2 = await Forwards.open([netdev("b")], dir, log);
    expect(f2.list()).toEqual([]);
    await f2.add("b", rule());
    const stored = JSON.parse(readFileSync(join(dir, "forwards.json"), "utf8"));
    expect(stored.forwards.map((s: { netdev: string }) => s.netdev)).toEqual(["a", "b"]);
  });
});

/** A guest at 10.0.2.15 on the netdev: learns its MAC via ARP, collects what it is sent. */
function attachGuest(u: UserNetdev) {
  const frames: Buffer[] = [];
  u.setReceiver((fs) => frames.push(...fs.map((f) => Buffer.from(f))));
  const arp = Buffer.alloc(14 + arpPacketLength);
  encodeArp(
    {
      op: ArpOp.request,
      senderMac: guestMac,
      senderIp: ip("10.0.2.15"),
      targetMac: Buffer.alloc(6),
      targetIp: ip("10.0.2.2"),
    },
    arp,
    14,
  );
  encodeEthernet(
    { dst: Buffer.alloc(6, 0xff), src: guestMac, ethertype: EtherType.arp, payload: arp.subarray(14) },
    arp,
  );
  u.send([arp]);
  frames.length = 0;
  const packets = (proto: number) =>
    frames.flatMap((f) => {
      const e = decodeEthernet(f);
      if (!e.ok || e.value.ethertype !== EtherType.ipv4) return [];
      const p = decodeIpv4(e.value.payload);
      return p.ok && p.value.protocol === proto ? [p.value] : [];
    });
  const sendUdp = (src: number, srcPort: number, dst: number, dstPort: number, payload: Buffer) => {
    const udp = Buffer.alloc(8 + payload.length);
    encodeUdp({ srcPort, dstPort, payload }, udp, 0, { src, dst });
    const f = Buffer.alloc(14 + 20 + udp.length);
    encodeIpv4(
      {
        tos: 0,
        id: 1,
        dontFragment: true,
        moreFragments: false,
        fragmentOffset: 0,
        ttl: 64,
        protocol: IpProto.udp,
        src,
        dst,
        options: Buffer.alloc(0),
        payload: udp,
      },
      f,
      14,
    );
    encodeEthernet(
      { dst: virtualMac(ip("10.0.2.2")), src: guestMac, ethertype: EtherType.ipv4, payload: f.subarray(14) },
      f,
    );
    u.send([f]);
  };
  return { frames, packets, sendUdp };
}

describe("what a forwarded flow looks like to the guest", () => {
  it("UDP: a host client's datagram reaches the guest from the gateway, and the guest's reply reaches the client", async () => {
    const u = netdev();
    const g = attachGuest(u);
    const f = await Forwards.open([u], undefined, log);
    const v = await f.add(undefined, rule({ proto: "udp", guestPort: 7 }));
    const client = dgram.createSocket("udp4");
    cleanups.push(() => client.close());
    const replies: string[] = [];
    client.on("message", (m) => replies.push(m.toString()));
    client.send("hello", v.bound?.port ?? 0, "127.0.0.1");
    await until(() => g.packets(IpProto.udp).length > 0);
    const [pkt] = g.packets(IpProto.udp);
    expect(pkt?.src).toBe(ip("10.0.2.2"));
    expect(pkt?.dst).toBe(ip("10.0.2.15"));
    const d = decodeUdp(pkt?.payload ?? Buffer.alloc(0), { src: pkt?.src ?? 0, dst: pkt?.dst ?? 0 });
    if (!d.ok) throw new Error(d.reason);
    expect(d.value.dstPort).toBe(7);
    expect(d.value.payload.toString()).toBe("hello");
    g.sendUdp(ip("10.0.2.15"), 7, ip("10.0.2.2"), d.value.srcPort, Buffer.from("echo:hello"));
    await until(() => replies.length > 0);
    expect(replies).toEqual(["echo:hello"]);
  });

  it("TCP with preserveSource: a loopback client still comes from the gateway (a guest would drop 127/8 as martian)", async () => {
    const u = netdev("u0", { preserveSource: true });
    const g = attachGuest(u);
    const f = await Forwards.open([u], undefined, log);
    const v = await f.add(undefined, rule({ guestPort: 22 }));
    expect(v.preserveSource).toBe(true);
    const s = net.connect(v.bound?.port ?? 0, "127.0.0.1");
    s.on("error", () => {});
    cleanups.push(() => s.destroy());
    await until(() => g.packets(IpProto.tcp).length > 0);
    const [syn] = g.packets(IpProto.tcp);
    expect(syn?.src).toBe(ip("10.0.2.2"));
    const t = decodeTcp(syn?.payload ?? Buffer.alloc(0), { src: syn?.src ?? 0, dst: syn?.dst ?? 0 });
    if (!t.ok) throw new Error(t.reason);
    expect(t.value.dstPort).toBe(22);
    expect(t.value.srcPort).toBeGreaterThanOrEqual(49152);
  });
});
