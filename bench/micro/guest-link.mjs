// What the micro benchmarks of one TCP connection share: the build they load (dist/, or
// another build's with --dist DIR), and a simulated guest on 10.0.2.15 behind the
// gateway 10.0.2.2 that builds its frames with the build's own codecs.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

/** The build to measure: `--dist DIR`, else this checkout's dist/; exits when there is none. */
export function distDir() {
  const distArg = process.argv.indexOf("--dist");
  const dist = (
    distArg > 0 ? [process.argv[distArg + 1]] : ["dist", "dist/src"].map((d) => join(root, d))
  ).find((d) => existsSync(join(d, "stack/user-stack.js")));
  if (!dist) {
    process.stderr.write("dist/ is missing: run npx tsc -p tsconfig.json\n");
    process.exit(2);
  }
  return dist;
}

/** `--NAME N` from the command line, or `fallback`. */
export function numberOption(name, fallback) {
  const argv = process.argv.slice(2);
  return argv.includes(`--${name}`) ? Number(argv[argv.indexOf(`--${name}`) + 1]) : fallback;
}

/** The stack's configuration at `mtu`, the two ends, and `guestFrame(seg)`: a TCP segment from the guest as an Ethernet frame. */
export async function guestLink(dist, mtu) {
  const { encodeTcp, tcpEncodingLength } = await import(join(dist, "stack/wire/tcp.js"));
  const { encodeIpv4 } = await import(join(dist, "stack/wire/ipv4.js"));
  const { encodeEthernet } = await import(join(dist, "stack/wire/ethernet.js"));
  const { parseIpv4, prefixToMask } = await import(join(dist, "stack/wire/addr.js"));
  const guestMac = Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  const gwMac = Buffer.from([0x52, 0x55, 10, 0, 2, 2]);
  const guest = parseIpv4("10.0.2.15");
  const remote = parseIpv4("10.0.2.2");
  const config = {
    net: parseIpv4("10.0.2.0"),
    mask: prefixToMask(24),
    host: remote,
    dns: parseIpv4("10.0.2.3"),
    smb: undefined,
    extraAddresses: [],
    mtu,
  };
  const guestFrame = (seg) => {
    const tcpLen = tcpEncodingLength(seg);
    const ip = Buffer.alloc(20 + tcpLen);
    encodeTcp(seg, ip, 20, { src: guest, dst: remote });
    encodeIpv4(
      {
        tos: 0,
        id: 1,
        dontFragment: true,
        moreFragments: false,
        fragmentOffset: 0,
        ttl: 64,
        protocol: 6,
        src: guest,
        dst: remote,
        options: Buffer.alloc(0),
        payload: ip.subarray(20),
      },
      ip,
    );
    const f = Buffer.alloc(14 + ip.length);
    encodeEthernet({ dst: gwMac, src: guestMac, ethertype: 0x0800, payload: ip }, f);
    ip.copy(f, 14);
    return f;
  };
  return { guest, remote, guestMac, gwMac, config, guestFrame };
}
