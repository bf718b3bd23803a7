#!/usr/bin/env node
// Micro benchmark of a user netdev's per-frame path for guest UDP to the outside
// (UserNetdev.send → stack → routing table → UDP NAT → timer schedule), in one process
// with a fake host (no sockets, nothing sent anywhere). With --base DIR (the dist/ of
// another build, e.g. a checkout of main after npx tsc) it runs both side by side,
// alternating, and prints the ratio: a refactor of the composition should keep it ~1.
//
// Usage: node bench/micro/user-netdev-udp.mjs [--base DIR] [--rounds 12]
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const argv = process.argv.slice(2);
const arg = (n) => (argv.includes(`--${n}`) ? argv[argv.indexOf(`--${n}`) + 1] : undefined);
const here = join(dirname(fileURLToPath(import.meta.url)), "../../dist");
const dists = { after: here };
if (arg("base")) dists.base = arg("base");
const rounds = Number(arg("rounds") ?? 12);
const nets = {};
for (const [k, d] of Object.entries(dists)) {
  const { UserNetdev } = await import(`${d}/user-netdev.js`);
  const { defaultUserNetdev } = await import(`${d}/cli/netdev-user.js`);
  const { silentLogger } = await import(`${d}/log.js`);
  const fakeHost = {
    openPing() {
      throw Object.assign(new Error("no"), { code: "EACCES" });
    },
    connectTcp() {
      throw new Error("no tcp");
    },
    bindUdp() {
      return { send: () => undefined, close() {} };
    },
  };
  const u = new UserNetdev(
    {
      ...defaultUserNetdev("u0", 0),
      dnsUpstream: [{ host: "127.0.0.1", port: 9 }] /* never asked: no DNS traffic */,
    },
    silentLogger,
    { hostNet: fakeHost },
  );
  u.setReceiver(() => {});
  nets[k] = u;
}
const { encodeUdp } = await import(`${dists.after}/stack/wire/udp.js`);
const { encodeIpv4, IpProto } = await import(`${dists.after}/stack/wire/ipv4.js`);
const { encodeEthernet, EtherType } = await import(`${dists.after}/stack/wire/ethernet.js`);
const { virtualMac } = await import(`${dists.after}/stack/config.js`);
const ip = (a, b, c, d) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
const guestMac = Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
function frame(dstPort) {
  const payload = Buffer.alloc(64, 1);
  const udp = Buffer.alloc(8 + payload.length);
  const src = ip(10, 0, 2, 15),
    dst = ip(198, 51, 100, 1);
  encodeUdp({ srcPort: 40000, dstPort, payload }, udp, 0, { src, dst });
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
    { dst: virtualMac(ip(10, 0, 2, 2)), src: guestMac, ethertype: EtherType.ipv4, payload: f.subarray(14) },
    f,
  );
  return f;
}
const batch = Array.from({ length: 32 }, (_, i) => frame(5000 + (i % 8)));
const best = { base: Infinity, after: Infinity };
const names = Object.keys(nets);
for (let round = 0; round < rounds; round++) {
  for (const k of round % 2 ? [...names].reverse() : names) {
    const u = nets[k];
    const n = 20000;
    const t0 = process.cpuUsage();
    for (let i = 0; i < n; i++) u.send(batch);
    const c = process.cpuUsage(t0);
    const ns = ((c.user + c.system) * 1000) / (n * batch.length);
    if (round > 1) best[k] = Math.min(best[k], ns);
  }
}
const head = `CPU ns per guest UDP datagram to the outside (best of ${rounds - 2} rounds, 20,000 batches of 32)`;
if (dists.base) {
  const ratio = (best.after / best.base).toFixed(3);
  console.log(`${head}: base ${best.base.toFixed(0)}, this build ${best.after.toFixed(0)}, ratio ${ratio}`);
} else console.log(`${head}: ${best.after.toFixed(0)}`);
for (const u of Object.values(nets)) u.close();
process.exit(0);
