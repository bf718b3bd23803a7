/**
 * ICMP ping sockets in a network namespace of our own, whose ping_group_range (a
 * per-namespace sysctl) the test sets: the socket is opened by a node child running
 * under `ip netns exec`, since a socket belongs to the namespace of its creator.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { addonPath } from "../../../src/native/binding.js";
import { describeWith, TestNetns } from "./native-env.js";

/** The child: opens a ping socket, pings `dst`, prints one JSON line and exits. */
const child = (dst: string) => `
  const m = require(${JSON.stringify(addonPath)});
  const print = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
  let fd;
  try { fd = m.openPingSocket(); }
  catch (e) { print({ error: { code: e.code, errno: e.errno, syscall: e.syscall, message: e.message } }); }
  const ident = m.pingSocketIdent(fd);
  const msg = Buffer.alloc(8 + 24);
  msg[0] = 8;
  msg.writeUInt16BE(0x1234, 4); // replaced by the kernel with the socket's ident
  msg.writeUInt16BE(7, 6);
  msg.write("usernet ping payload 123", 8);
  const p = new m.FdPoller(fd, "ping", (msgs, sources) => {
    const r = msgs[0];
    print({ ident, count: msgs.length, source: sources[0], type: r[0], code: r[1], id: r.readUInt16BE(4),
            seq: r.readUInt16BE(6), payload: r.subarray(8).toString(), stats: p.stats() });
  });
  const sent = m.sendPing(fd, ${JSON.stringify(dst)}, msg);
  let bad;
  try { m.sendPing(fd, ${JSON.stringify(dst)}, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])); } catch (e) { bad = e.code; }
  if (!sent || bad !== "EINVAL") print({ error: { sent, bad } });
  setTimeout(() => print({ error: "timeout" }), 3000).unref();
`;

describeWith("ICMP ping sockets", ["root", "ip", "addon"], () => {
  let ns: TestNetns;
  beforeAll(async () => {
    ns = await TestNetns.create();
  });
  afterAll(async () => {
    await ns?.close();
  });

  async function runChild(dst: string): Promise<Record<string, unknown>> {
    const r = await ns.exec(process.execPath, ["-e", child(dst)], 10_000);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim()) as Record<string, unknown>;
  }

  it("pings 127.0.0.1 and gets the reply, with the socket's ident and the same payload", async () => {
    await ns.execOk("sysctl", ["-qw", "net.ipv4.ping_group_range=0 2147483647"]);
    const out = await runChild("127.0.0.1");
    expect(out.error).toBeUndefined();
    expect(out).toMatchObject({
      count: 1,
      source: "127.0.0.1",
      type: 0,
      code: 0,
      seq: 7,
      payload: "usernet ping payload 123",
    });
    expect(out.ident).toBeGreaterThan(0);
    expect(out.id).toBe(out.ident);
    expect(out.stats).toMatchObject({ batches: 1, packets: 1, readErrors: 0 });
  });

  it("fails with EACCES, naming ping_group_range, when the namespace forbids ping sockets", async () => {
    await ns.execOk("sysctl", ["-qw", "net.ipv4.ping_group_range=1 0"]);
    const out = await runChild("127.0.0.1");
    expect(out.error).toMatchObject({ code: "EACCES", errno: -13 });
    const e = out.error as { message: string; syscall: string };
    expect(e.syscall).toContain("socket");
    expect(e.message).toContain("EACCES");
    expect(e.message).toContain("net.ipv4.ping_group_range");
  });
});
