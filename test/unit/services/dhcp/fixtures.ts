/**
 * DHCPDISCOVERs as real clients send them, written out by hand from their formats
 * (busybox 1.35 udhcpc and ISC dhclient 4.4 as in Debian 12), plus a small builder.
 */
import { type DhcpMessage, encodeDhcp } from "../../../../src/services/dhcp/dhcp-codec.js";

/** Hex with spaces, newlines and `# comments` allowed. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/#.*$/gm, "").replace(/\s+/g, ""), "hex");
}

const z = (n: number) => "00".repeat(n);

/**
 * busybox udhcpc 1.35.0, MAC 52:54:00:12:34:56: options 53, 61 (client id 01+MAC),
 * 57 (max size 576), 60 ("udhcp 1.35.0"), 55 (1 3 6 12 15 28 42); 300 bytes.
 */
export const UDHCPC_DISCOVER = hex(`
  01 01 06 00            # op BOOTREQUEST, htype ethernet, hlen 6, hops 0
  39 03 f3 26            # xid
  00 00 00 00            # secs, flags
  ${z(16)}               # ciaddr yiaddr siaddr giaddr
  52 54 00 12 34 56 ${z(10)}  # chaddr
  ${z(64)} ${z(128)}     # sname, file
  63 82 53 63            # magic cookie
  35 01 01               # 53 DHCPDISCOVER
  3d 07 01 52 54 00 12 34 56  # 61 client id: type 1 + MAC
  39 02 02 40            # 57 max message size 576
  3c 0c 75 64 68 63 70 20 31 2e 33 35 2e 30  # 60 "udhcp 1.35.0"
  37 07 01 03 06 0c 0f 1c 2a  # 55 parameter request list
  ff
  ${z(20)}               # padding to 300
`);

/**
 * ISC dhclient 4.4.3, MAC 52:54:00:12:34:57, a lease remembered for 10.0.2.20 (option
 * 50), hostname "guest", Debian's request list; secs 3; 300 bytes.
 */
export const DHCLIENT_DISCOVER = hex(`
  01 01 06 00
  6e 2e 1c 51            # xid
  00 03 00 00            # secs 3, flags 0
  ${z(16)}
  52 54 00 12 34 57 ${z(10)}
  ${z(64)} ${z(128)}
  63 82 53 63
  35 01 01               # 53 DHCPDISCOVER
  32 04 0a 00 02 14      # 50 requested address 10.0.2.20
  0c 05 67 75 65 73 74   # 12 hostname "guest"
  37 0d 01 1c 02 03 0f 06 77 0c 2c 2f 1a 79 2a  # 55 parameter request list
  ff
  ${z(28)}
`);

export interface ClientMessage {
  type?: number;
  mac?: string;
  xid?: number;
  ciaddr?: number;
  flags?: number;
  /** option code → value, written in this order after option 53 */
  options?: [number, Buffer][];
  cookie?: boolean;
}

/** A client message as a DHCP client would build it. */
export function clientMessage(c: ClientMessage): Buffer {
  const options = new Map<number, Buffer>();
  if (c.type !== undefined) options.set(53, Buffer.from([c.type]));
  for (const [code, value] of c.options ?? []) options.set(code, value);
  const m: DhcpMessage = {
    op: 1,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: c.xid ?? 0x1234,
    secs: 0,
    flags: c.flags ?? 0,
    ciaddr: c.ciaddr ?? 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: 0,
    chaddr: Buffer.from((c.mac ?? "52:54:00:12:34:56").replaceAll(":", ""), "hex"),
    sname: Buffer.alloc(0),
    file: Buffer.alloc(0),
    cookie: c.cookie ?? true,
    options,
  };
  return encodeDhcp(m);
}

export const ip = (s: string): number => s.split(".").reduce((a, o) => a * 256 + Number(o), 0);
export const ipBuf = (s: string): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ip(s));
  return b;
};
