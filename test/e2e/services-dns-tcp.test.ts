/**
 * DNS over TCP at 10.0.2.3:53 with BIND's `dig +tcp` in a QEMU guest. usernet accepts
 * the guest's TCP connection itself and forwards each query upstream over TCP, so the
 * upstream here is a small TCP DNS server this file starts on 127.0.0.1 inside the
 * test's namespace (the harness's TestDnsServer is UDP only). Nothing leaves the
 * namespace.
 */
import { createRequire } from "node:module";
import { expect, test } from "vitest";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const started = /^# attach a QEMU guest/m;
const upstreamPort = 5355;

// CommonJS for `node -e`; argv: dns-packet's path, port. Prints "tcp-query NAME" per query.
const tcpDnsServer = `
const net = require("node:net");
const packet = require(process.argv[1]);
const port = Number(process.argv[2]);
const records = { "www.example.test": ["192.0.2.10", "192.0.2.11"], "tcp.example.test": ["192.0.2.53"] };
net.createServer((sock) => {
  let buf = Buffer.alloc(0);
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      const q = packet.decode(msg);
      const question = q.questions[0];
      const name = question.name.toLowerCase();
      process.stdout.write("tcp-query " + name + "\\n");
      const reply = { type: "response", id: q.id, flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE, questions: q.questions, answers: [] };
      if (!records[name]) reply.flags |= 3;
      else if (question.type === "A") reply.answers = records[name].map((ip) => ({ type: "A", class: "IN", name: question.name, ttl: 30, data: ip }));
      const out = packet.encode(reply);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(out.length, 0);
      sock.write(Buffer.concat([len, out]));
    }
  });
  sock.on("error", () => {});
}).listen(port, "127.0.0.1", () => process.stdout.write("listening " + port + "\\n"));
process.on("SIGTERM", () => process.exit(0));
`;

describeE2E(
  "DNS over TCP with dig +tcp",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("dig +tcp resolves through usernet's DNS address, upstream over TCP", async () => {
      const ns = await e2e.netns();
      const dnsPacket = createRequire(import.meta.url).resolve("dns-packet");
      const upstream = ns.spawn("tcp dns server", process.execPath, [
        "-e",
        tcpDnsServer,
        dnsPacket,
        String(upstreamPort),
      ]);
      e2e.watch(upstream);
      await upstream.until("the TCP DNS server", 10_000, () =>
        upstream.stdout.includes(`listening ${upstreamPort}\n`) ? true : undefined,
      );
      await e2e.usernet(
        ns,
        [
          "-netdev",
          `user,id=u0,dns-upstream=127.0.0.1:${upstreamPort}`,
          "-netdev",
          "socket,id=s0,listen=127.0.0.1:10053",
        ],
        { ready: { tcp: [10053], stdout: started } },
      );
      const g = await e2e.guest(ns, {
        name: "dns-tcp-guest",
        netdev: "socket,id=n0,connect=127.0.0.1:10053",
        nic: "virtio-net-pci",
        ip: "10.0.2.15/24",
        gw: "10.0.2.2",
        initrd: "dig",
      });

      const short = await g.runOk("dig +tcp +short +tries=2 +time=5 @10.0.2.3 www.example.test A", {
        timeoutMs: 30_000,
      });
      expect(short.trim().split("\n").sort()).toEqual(["192.0.2.10", "192.0.2.11"]);
      const full = await g.runOk("dig +tcp +tries=2 +time=5 @10.0.2.3 tcp.example.test A", {
        timeoutMs: 30_000,
      });
      expect(full).toMatch(/status: NOERROR/);
      expect(full).toMatch(/^tcp\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.53$/m);
      expect(full).toMatch(/SERVER: 10\.0\.2\.3#53\(10\.0\.2\.3\) \(TCP\)/);
      const nx = await g.run("dig +tcp +tries=2 +time=5 @10.0.2.3 nosuch.example.test A", {
        timeoutMs: 30_000,
      });
      expect(nx.output).toMatch(/status: NXDOMAIN/);
      // a local name, answered by usernet without asking upstream
      const local = await g.runOk("dig +tcp +short +tries=2 +time=5 @10.0.2.3 host.usernet.internal A", {
        timeoutMs: 30_000,
      });
      expect(local.trim()).toBe("10.0.2.2");
      // several queries on one connection (dig keeps it open with +keepopen)
      const multi = await g.runOk(
        "dig +tcp +keepopen +short +tries=2 +time=5 @10.0.2.3 www.example.test A tcp.example.test A",
        { timeoutMs: 30_000 },
      );
      expect(multi.trim().split("\n").sort()).toEqual(["192.0.2.10", "192.0.2.11", "192.0.2.53"]);

      const asked = upstream.stdout.split("\n").filter((l) => l.startsWith("tcp-query "));
      expect(asked.filter((l) => l === "tcp-query www.example.test").length).toBeGreaterThanOrEqual(2);
      expect(asked).toContain("tcp-query tcp.example.test");
      expect(asked).toContain("tcp-query nosuch.example.test");
      expect(asked).not.toContain("tcp-query host.usernet.internal");
    });
  },
  { timeoutMs: 180_000 },
);
