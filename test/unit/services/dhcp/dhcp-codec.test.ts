import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  cString,
  type DhcpMessage,
  DhcpOption,
  decodeDhcp,
  decodeDomainSearch,
  dhcpEncodingLength,
  dhcpMessageType,
  encodeDhcp,
  encodeDomainSearch,
  optIpv4,
  optionEncodedLength,
  optionIpv4,
  optionU16,
  optString,
  optU16,
  optU32,
} from "../../../../src/services/dhcp/dhcp-codec.js";
import { DHCLIENT_DISCOVER, hex, ip, UDHCPC_DISCOVER } from "./fixtures.js";

function unwrap<T>(r: { ok: true; value: T } | { ok: false; reason: string }): T {
  if (!r.ok) throw new Error(`expected ok, got ${r.reason}`);
  return r.value;
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const fixed = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const u32 = fc.integer({ min: 0, max: 0xffffffff });

const arbOptions = fc
  .uniqueArray(
    fc.tuple(
      fc.integer({ min: 1, max: 254 }).filter((c) => c !== DhcpOption.OVERLOAD),
      bytes(600),
    ),
    { selector: ([code]) => code, maxLength: 12 },
  )
  .map((entries) => new Map(entries));

const arbMessage: fc.Arbitrary<DhcpMessage> = fc
  .record({
    op: fc.integer({ min: 0, max: 255 }),
    htype: fc.integer({ min: 0, max: 255 }),
    hlen: fc.integer({ min: 0, max: 16 }),
    hops: fc.integer({ min: 0, max: 255 }),
    xid: u32,
    secs: fc.integer({ min: 0, max: 0xffff }),
    flags: fc.integer({ min: 0, max: 0xffff }),
    ciaddr: u32,
    yiaddr: u32,
    siaddr: u32,
    giaddr: u32,
    chaddr: fixed(16),
    sname: fixed(64),
    file: fixed(128),
    cookie: fc.boolean(),
    options: arbOptions,
  })
  .map((m) => (m.cookie ? m : { ...m, options: new Map<number, Buffer>() }));

describe("decodeDhcp", () => {
  test("reads a busybox udhcpc DISCOVER", () => {
    const m = unwrap(decodeDhcp(UDHCPC_DISCOVER));
    expect(UDHCPC_DISCOVER.length).toBe(300);
    expect(m).toMatchObject({ op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x3903f326, flags: 0, cookie: true });
    expect(m.chaddr.subarray(0, 6).toString("hex")).toBe("525400123456");
    expect(dhcpMessageType(m)).toBe(1);
    expect([...m.options.keys()]).toEqual([53, 61, 57, 60, 55]);
    expect(optionU16(m, DhcpOption.MAX_MESSAGE_SIZE)).toBe(576);
    expect(m.options.get(DhcpOption.VENDOR_CLASS)?.toString()).toBe("udhcp 1.35.0");
    expect([...(m.options.get(DhcpOption.PARAMETER_LIST) ?? [])]).toEqual([1, 3, 6, 12, 15, 28, 42]);
  });

  test("reads an ISC dhclient DISCOVER", () => {
    const m = unwrap(decodeDhcp(DHCLIENT_DISCOVER));
    expect(DHCLIENT_DISCOVER.length).toBe(300);
    expect(m.secs).toBe(3);
    expect([...m.options.keys()]).toEqual([53, 50, 12, 55]);
    expect(optionIpv4(m, DhcpOption.REQUESTED_ADDRESS)).toBe(ip("10.0.2.20"));
    expect(m.options.get(DhcpOption.HOSTNAME)?.toString()).toBe("guest");
  });

  test("plain BOOTP (no magic cookie) decodes without options", () => {
    const b = Buffer.alloc(300);
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[240] = 53; // looks like an option, but without the cookie it is vendor data
    const m = unwrap(decodeDhcp(b));
    expect(m.cookie).toBe(false);
    expect(m.options.size).toBe(0);
    expect(dhcpMessageType(m)).toBeUndefined();
  });

  test("rejects short input and a bad hlen", () => {
    expect(decodeDhcp(Buffer.alloc(235))).toEqual({ ok: false, reason: "dhcp-too-short" });
    const b = Buffer.from(UDHCPC_DISCOVER);
    b[2] = 17;
    expect(decodeDhcp(b)).toEqual({ ok: false, reason: "dhcp-bad-hlen" });
  });

  test("a header of exactly 236 bytes decodes as BOOTP", () => {
    const m = unwrap(decodeDhcp(UDHCPC_DISCOVER.subarray(0, 236)));
    expect(m.cookie).toBe(false);
  });

  test("an option running past the end is rejected", () => {
    const b = Buffer.concat([UDHCPC_DISCOVER.subarray(0, 240), hex("35 01 01 0c 09 61 62")]);
    expect(decodeDhcp(b)).toEqual({ ok: false, reason: "dhcp-option-truncated" });
    const lenMissing = Buffer.concat([UDHCPC_DISCOVER.subarray(0, 240), hex("35")]);
    expect(decodeDhcp(lenMissing)).toEqual({ ok: false, reason: "dhcp-option-truncated" });
  });

  test("pads are skipped, a missing End is tolerated, data after End ignored", () => {
    const b = Buffer.concat([UDHCPC_DISCOVER.subarray(0, 240), hex("00 00 35 01 03 00 0c 01 61")]);
    const m = unwrap(decodeDhcp(b));
    expect([...m.options.keys()]).toEqual([53, 12]);
    const afterEnd = Buffer.concat([UDHCPC_DISCOVER.subarray(0, 240), hex("35 01 03 ff 0c 55")]);
    expect([...unwrap(decodeDhcp(afterEnd)).options.keys()]).toEqual([53]);
  });

  test("repeated options are concatenated in order (RFC 3396)", () => {
    const b = Buffer.concat([
      UDHCPC_DISCOVER.subarray(0, 240),
      hex("77 03 61 62 63 35 01 01 77 02 64 65 77 00 ff"),
    ]);
    const m = unwrap(decodeDhcp(b));
    expect([...m.options.keys()]).toEqual([119, 53]);
    expect(m.options.get(119)?.toString()).toBe("abcde");
  });

  test("option overload continues in file, then sname", () => {
    const b = Buffer.from(UDHCPC_DISCOVER.subarray(0, 240));
    const withOverload = Buffer.concat([b, hex("34 01 03 35 01 01 ff")]);
    hex("0c 04 66 69 6c 65 ff").copy(withOverload, 108); // file
    hex("0f 05 73 6e 61 6d 65 0c 01 21 ff").copy(withOverload, 44); // sname
    const m = unwrap(decodeDhcp(withOverload));
    expect([...m.options.keys()]).toEqual([52, 53, 12, 15]);
    expect(m.options.get(12)?.toString()).toBe("file!");
    expect(m.options.get(15)?.toString()).toBe("sname");
  });

  test("a bad overload value is ignored; a truncated overloaded field is rejected", () => {
    const base = Buffer.concat([UDHCPC_DISCOVER.subarray(0, 240), hex("34 01 07 35 01 01 ff")]);
    expect([...unwrap(decodeDhcp(base)).options.keys()]).toEqual([52, 53]);
    const trunc = Buffer.concat([UDHCPC_DISCOVER.subarray(0, 240), hex("34 01 01 ff")]);
    trunc.fill(0x0c, 108, 236); // option 12, length 12, ... runs off the 128-byte field
    expect(decodeDhcp(trunc)).toEqual({ ok: false, reason: "dhcp-option-truncated" });
  });

  test.prop([fc.uint8Array({ maxLength: 700 })])("never throws on garbage", (a) => {
    const r = decodeDhcp(Buffer.from(a));
    expect(typeof r.ok).toBe("boolean");
  });

  test.prop([fc.uint8Array({ maxLength: 400 }), fc.integer({ min: 0, max: 3 })])(
    "never throws on garbage options, with or without overload",
    (a, overload) => {
      const b = Buffer.concat([UDHCPC_DISCOVER.subarray(0, 240), hex(`34 01 0${overload}`), Buffer.from(a)]);
      b.fill(0xfe, 44, 236);
      const r = decodeDhcp(b);
      if (r.ok) for (const code of r.value.options.keys()) expect(code === 0 || code === 255).toBe(false);
    },
  );
});

describe("encodeDhcp", () => {
  test.prop([arbMessage])("round-trips", (m) => {
    const out = encodeDhcp(m);
    expect(out.length).toBe(dhcpEncodingLength(m));
    expect(out.length).toBeGreaterThanOrEqual(300);
    const back = unwrap(decodeDhcp(out));
    expect(back).toEqual(m);
    expect([...back.options.keys()]).toEqual([...m.options.keys()]);
  });

  test("re-encodes the udhcpc DISCOVER byte for byte", () => {
    expect(encodeDhcp(unwrap(decodeDhcp(UDHCPC_DISCOVER))).equals(UDHCPC_DISCOVER)).toBe(true);
    expect(encodeDhcp(unwrap(decodeDhcp(DHCLIENT_DISCOVER))).equals(DHCLIENT_DISCOVER)).toBe(true);
  });

  test("splits long values into 255-byte instances", () => {
    const m = unwrap(decodeDhcp(UDHCPC_DISCOVER));
    m.options = new Map([[119, Buffer.alloc(600, 0x61)]]);
    const out = encodeDhcp(m);
    expect(out[240]).toBe(119);
    expect(out[241]).toBe(255);
    expect(out[240 + 257]).toBe(119);
    expect(out[240 + 258]).toBe(255);
    expect(out[240 + 514]).toBe(119);
    expect(out[240 + 515]).toBe(90);
    expect(out[240 + 516 + 90]).toBe(255);
    expect(optionEncodedLength(600)).toBe(606);
    expect(optionEncodedLength(0)).toBe(2);
  });

  test("short fields are zero-filled, long ones cut; minimum length honoured", () => {
    const m = unwrap(decodeDhcp(UDHCPC_DISCOVER));
    m.sname = Buffer.from("srv");
    m.file = Buffer.alloc(200, 0x41);
    m.options = new Map();
    const out = encodeDhcp(m, 0);
    expect(out.length).toBe(241);
    const back = unwrap(decodeDhcp(out));
    expect(cString(back.sname)).toBe("srv");
    expect(back.file.length).toBe(128);
    expect(cString(back.file)).toBe("A".repeat(128));
  });
});

describe("option values", () => {
  test("builders", () => {
    expect(optIpv4(ip("10.0.2.3"), ip("10.0.2.4")).toString("hex")).toBe("0a0002030a000204");
    expect(optU32(86400).toString("hex")).toBe("00015180");
    expect(optU16(65520).toString("hex")).toBe("fff0");
    expect(optString("pxelinux.0").toString()).toBe("pxelinux.0");
    expect(cString(Buffer.from("abc\0def"))).toBe("abc");
  });
});

describe("domain search (option 119)", () => {
  test("RFC 3397 example, with compression", () => {
    const b = unwrap(encodeDomainSearch(["eng.apple.com.", "marketing.apple.com."]));
    expect(b.toString("hex")).toBe(
      hex("03 656e67 05 6170706c65 03 636f6d 00 09 6d61726b6574696e67 c0 04").toString("hex"),
    );
    expect(unwrap(decodeDomainSearch(b))).toEqual(["eng.apple.com", "marketing.apple.com"]);
  });

  test("a whole repeated name is one pointer", () => {
    const b = unwrap(encodeDomainSearch(["example.com", "Example.COM"]));
    expect(b.toString("hex")).toBe(hex("07 6578616d706c65 03 636f6d 00 c0 00").toString("hex"));
  });

  test("invalid names are refused", () => {
    expect(encodeDomainSearch([""])).toEqual({ ok: false, reason: "dns-name-empty" });
    expect(encodeDomainSearch(["a..b"])).toEqual({ ok: false, reason: "dns-label-empty" });
    expect(encodeDomainSearch([`${"x".repeat(64)}.com`])).toEqual({
      ok: false,
      reason: "dns-label-too-long",
    });
    const long = Array.from({ length: 5 }, () => "y".repeat(60)).join(".");
    expect(encodeDomainSearch([long])).toEqual({ ok: false, reason: "dns-name-too-long" });
  });

  const arbName = fc
    .array(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { minLength: 1, maxLength: 5 })
    .map((labels) => labels.join("."));

  test.prop([fc.array(arbName, { maxLength: 8 })])("round-trips", (names) => {
    const b = unwrap(encodeDomainSearch(names));
    expect(unwrap(decodeDomainSearch(b))).toEqual(names);
    // compression never makes it longer than plain encoding
    const plain = names.reduce((n, s) => n + s.length + 2, 0);
    expect(b.length).toBeLessThanOrEqual(plain);
  });

  test("decoder refuses loops, forward pointers and truncation", () => {
    expect(decodeDomainSearch(hex("c0 00")).ok).toBe(false);
    expect(decodeDomainSearch(hex("01 61 c0 02 00")).ok).toBe(false);
    expect(decodeDomainSearch(hex("03 61 62")).ok).toBe(false);
    expect(decodeDomainSearch(hex("01 61 00 01 62 c0")).ok).toBe(false);
    expect(decodeDomainSearch(hex("41 61")).ok).toBe(false);
  });

  test.prop([fc.uint8Array({ maxLength: 300 })])("decoder never throws", (a) => {
    const r = decodeDomainSearch(Buffer.from(a));
    expect(typeof r.ok).toBe("boolean");
  });
});
