/** VXLAN ports over loopback UDP: a raw socket plays the Linux VTEP. */
import { createSocket, type Socket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { decodeVxlan, encodeVxlan } from "../../../src/ports/vxlan-header.js";
import { openVxlanPort, type VxlanPort } from "../../../src/ports/vxlan-port.js";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

async function udp(host = "127.0.0.1"): Promise<{ s: Socket; port: number; got: Buffer[] }> {
  const s = createSocket("udp4");
  const got: Buffer[] = [];
  s.on("message", (m) => got.push(m));
  await new Promise<void>((r) => s.bind(0, host, () => r()));
  cleanup.push(() => s.close());
  return { s, port: s.address().port, got };
}

const frame = (dst: string, src: string, fill = 0) =>
  Buffer.concat([Buffer.from(`${dst}${src}0800`, "hex"), Buffer.alloc(46, fill)]);

async function until<T>(what: () => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = what();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error("timed out");
}

async function open(peerPort: number, extra: Partial<Parameters<typeof openVxlanPort>[0]> = {}) {
  const port: VxlanPort = await openVxlanPort({
    name: "vx0",
    log: silentLogger,
    vni: 42,
    remotes: [{ host: "127.0.0.1", port: peerPort }],
    local: { host: "127.0.0.1", port: 0 },
    dstport: peerPort,
    ...extra,
  });
  cleanup.push(() => port.close());
  const rx: Buffer[] = [];
  port.setReceiver((frames) => rx.push(...frames));
  return { port, rx, address: port.localAddress() };
}

describe("VxlanPort", () => {
  it("floods to the remote with the VNI; a learned MAC is answered at the configured port, not the sender's", async () => {
    const vtep = await udp();
    const { port, rx, address } = await open(vtep.port);
    port.send([frame("ffffffffffff", "525400123456")]);
    const d = decodeVxlan(await until(() => vtep.got[0]));
    expect(d).toMatchObject({ ok: true, vni: 42 });
    if (d.ok) expect(d.frame.equals(frame("ffffffffffff", "525400123456"))).toBe(true);

    // Linux sends from a random source port
    const sender = await udp();
    sender.s.send(encodeVxlan(42, frame("525400123456", "0a0000000001", 7)), address.port, "127.0.0.1");
    const inner = await until(() => rx[0]);
    expect(inner.equals(frame("525400123456", "0a0000000001", 7))).toBe(true);
    port.send([frame("0a0000000001", "525400123456", 9)]);
    const reply = decodeVxlan(await until(() => vtep.got[1]));
    expect(reply.ok && reply.frame[20]).toBe(9);
    expect(sender.got).toEqual([]);
    expect(port.learned()).toMatchObject([{ mac: "0a:00:00:00:00:01", vtep: `127.0.0.1:${vtep.port}` }]);
    expect(port.stats()).toMatchObject({ rxFrames: 1, txFrames: 2, drops: {} });
  });

  it("counts and drops malformed datagrams, a foreign VNI and short inner frames, and keeps working", async () => {
    const vtep = await udp();
    const { port, rx, address } = await open(vtep.port);
    const bad = [
      Buffer.alloc(3),
      Buffer.from("0c00000000002a00", "hex"),
      Buffer.from("0000000000002a00", "hex"),
      encodeVxlan(43, frame("ffffffffffff", "0a0000000001")),
      encodeVxlan(42, Buffer.alloc(10)),
    ];
    for (const b of bad) vtep.s.send(b, address.port, "127.0.0.1");
    vtep.s.send(encodeVxlan(42, frame("ffffffffffff", "0a0000000002")), address.port, "127.0.0.1");
    await until(() => rx[0]);
    expect(rx).toHaveLength(1);
    expect(port.stats().drops).toEqual({
      "vxlan-too-short": 1,
      "vxlan-reserved-bits": 1,
      "vxlan-no-vni-flag": 1,
      "vni-mismatch": 1,
      "frame-too-short": 1,
    });
  });

  it("floods to every remote; frames too long for a datagram are dropped", async () => {
    const a = await udp();
    const b = await udp();
    const { port } = await open(a.port, {
      remotes: [
        { host: "127.0.0.1", port: a.port },
        { host: "127.0.0.1", port: b.port },
      ],
    });
    port.send([frame("ffffffffffff", "525400123456"), Buffer.alloc(70_000)]);
    await until(() => (a.got[0] && b.got[0] ? true : undefined));
    expect(port.stats().drops).toEqual({ "frame-too-long": 1 });
    expect(port.describe()).toMatch(
      /^vxlan vni 42 on 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+ \(0 MACs learned\)$/,
    );
  });

  it("drops past its send queue bound instead of growing", async () => {
    const vtep = await udp();
    const { port } = await open(vtep.port, { maxQueuedBytes: 0 });
    port.send([frame("ffffffffffff", "525400123456")]);
    expect(port.stats().drops).toEqual({ "tx-queue-full": 1 });
  });

  it("refuses a group that is not multicast, naming it", async () => {
    await expect(
      openVxlanPort({
        name: "vx1",
        log: silentLogger,
        vni: 1,
        remotes: [],
        group: { host: "10.0.0.1", port: 4789 },
        local: { host: "127.0.0.1", port: 0 },
        dstport: 4789,
      }),
    ).rejects.toThrow("vx1: group 10.0.0.1 is not an IPv4 multicast address");
  });
});
