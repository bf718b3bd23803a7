import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  formatHostForward,
  parseGuestForward,
  parseHostForward,
  parseRedirect,
} from "../../../src/cli/forwards.js";
import { ipv6ToString, parseIpv6 } from "../../../src/stack/wire/ipv6-addr.js";

describe("hostfwd=", () => {
  it.each([
    ["tcp::2222-:22", { proto: "tcp", hostAddr: "", hostPort: 2222, guestAddr: "", guestPort: 22 }],
    ["::2222-:22", { proto: "tcp", hostAddr: "", hostPort: 2222, guestAddr: "", guestPort: 22 }],
    [
      "udp:127.0.0.1:5353-10.0.2.15:53",
      { proto: "udp", hostAddr: "127.0.0.1", hostPort: 5353, guestAddr: "10.0.2.15", guestPort: 53 },
    ],
    ["tcp::0-:80", { proto: "tcp", hostAddr: "", hostPort: 0, guestAddr: "", guestPort: 80 }],
    [
      "tcp:[::1]:2222-[fec0::15]:22",
      { proto: "tcp", hostAddr: "::1", hostPort: 2222, guestAddr: "fec0::15", guestPort: 22 },
    ],
    ["tcp:[::1]:2222-:22", { proto: "tcp", hostAddr: "::1", hostPort: 2222, guestAddr: "", guestPort: 22 }],
    [
      "udp:[::]:5353-10.0.2.15:53",
      { proto: "udp", hostAddr: "::", hostPort: 5353, guestAddr: "10.0.2.15", guestPort: 53 },
    ],
    [
      "tcp:127.0.0.1:8080-[FEC0:0::0015]:80",
      { proto: "tcp", hostAddr: "127.0.0.1", hostPort: 8080, guestAddr: "fec0::15", guestPort: 80 },
    ],
  ])("%s", (s, value) => {
    expect(parseHostForward(s)).toEqual({ ok: true, value });
  });

  it.each([
    ["tcp:2222-:22", 'bad host address "2222-"'],
    ["tcp", "missing ':' after the protocol"],
    ["sctp::1-:2", 'bad protocol "sctp" (tcp or udp)'],
    ["tcp::2222", "missing '-' between host and guest side"],
    ["tcp::2222-22", "missing ':' between guest address and port"],
    ["tcp::65536-:22", 'bad host port "65536" (0..65535)'],
    ["tcp::-:22", 'bad host port "" (0..65535)'],
    ["tcp::2222-:0", 'bad guest port "0" (1..65535)'],
    ["tcp::2222-:22x", 'bad guest port "22x" (1..65535)'],
    ["tcp::2222-10.0.2:22", 'bad guest address "10.0.2"'],
    ["tcp:localhost:2222-:22", 'bad host address "localhost"'],
    ["tcp:::1:2222-:22", 'bad host port ":1:2222" (0..65535)'],
    ["tcp:[::1:2222-:22", "missing ']:' after the host address"],
    ["tcp:[::1]2222-:22", "missing ']:' after the host address"],
    ["tcp:[10.0.0.1]:2222-:22", 'bad host address "[10.0.0.1]" (brackets are for IPv6)'],
    ["tcp:[::1]:2222-[fec0::zz]:22", 'bad guest address "fec0::zz"'],
    ["tcp:[::1]:2222-[fec0::15]22", "missing ']:' after the guest address"],
  ])("%s → %s", (s, reason) => {
    expect(parseHostForward(s)).toEqual({ ok: false, reason });
  });

  // IPv6 as the parser keeps it: RFC 5952 text
  const arbIpv6 = fc.ipV6().map((a) => ipv6ToString(parseIpv6(a) as Buffer));
  const arbForward = fc.record({
    proto: fc.constantFrom("tcp" as const, "udp" as const),
    hostAddr: fc.oneof(fc.constant(""), fc.ipV4(), arbIpv6),
    hostPort: fc.integer({ min: 0, max: 65535 }),
    guestAddr: fc.oneof(fc.constant(""), fc.ipV4(), arbIpv6),
    guestPort: fc.integer({ min: 1, max: 65535 }),
  });
  test.prop([arbForward])("formatHostForward round-trips", (f) => {
    expect(parseHostForward(formatHostForward(f))).toEqual({ ok: true, value: f });
  });
});

describe("-redir", () => {
  it.each([
    ["tcp:2222::22", { proto: "tcp", hostAddr: "", hostPort: 2222, guestAddr: "", guestPort: 22 }],
    [":2222::22", { proto: "tcp", hostAddr: "", hostPort: 2222, guestAddr: "", guestPort: 22 }],
    [
      "tcp:2222:[fec0::15]:22",
      { proto: "tcp", hostAddr: "", hostPort: 2222, guestAddr: "fec0::15", guestPort: 22 },
    ],
    [
      "udp:5555:10.0.2.15:53",
      { proto: "udp", hostAddr: "", hostPort: 5555, guestAddr: "10.0.2.15", guestPort: 53 },
    ],
  ])("%s", (s, value) => {
    expect(parseRedirect(s)).toEqual({ ok: true, value });
  });

  it.each([
    ["2222::22", 'bad protocol "2222" (tcp or udp)'],
    ["tcp:2222", "missing ':' after the host port"],
    ["tcp:x::22", 'bad host port "x" (0..65535)'],
    ["tcp:2222:22", "missing ':' between guest address and port"],
    ["tcp:2222::99999", 'bad guest port "99999" (1..65535)'],
  ])("%s → %s", (s, reason) => {
    expect(parseRedirect(s)).toEqual({ ok: false, reason });
  });
});

describe("guestfwd=", () => {
  it.each([
    [
      "tcp:10.0.2.100:1234-cmd:nc 127.0.0.1 22",
      { proto: "tcp", server: "10.0.2.100", port: 1234, target: { kind: "cmd", command: "nc 127.0.0.1 22" } },
    ],
    [
      ":10.0.2.100:1234-cmd:cat",
      { proto: "tcp", server: "10.0.2.100", port: 1234, target: { kind: "cmd", command: "cat" } },
    ],
    [
      "tcp::1234-cmd:a-b:c",
      { proto: "tcp", server: "", port: 1234, target: { kind: "cmd", command: "a-b:c" } },
    ],
    [
      "tcp:10.0.2.100:80-tcp:127.0.0.1:8080",
      {
        proto: "tcp",
        server: "10.0.2.100",
        port: 80,
        target: { kind: "tcp", host: "127.0.0.1", port: 8080 },
      },
    ],
    [
      "tcp:10.0.2.100:80-tcp:localhost:8080",
      {
        proto: "tcp",
        server: "10.0.2.100",
        port: 80,
        target: { kind: "tcp", host: "localhost", port: 8080 },
      },
    ],
  ])("%s", (s, value) => {
    expect(parseGuestForward(s)).toEqual({ ok: true, value });
  });

  it.each([
    ["udp:10.0.2.100:1-cmd:x", 'bad protocol "udp" (only tcp)'],
    ["tcp", "missing ':' after the protocol"],
    ["tcp:10.0.2.100", "missing ':' after the server address"],
    ["tcp:10.0.2.1000:1-cmd:x", 'bad server address "10.0.2.1000"'],
    ["tcp:10.0.2.100:1234", "missing '-' before the target"],
    ["tcp:10.0.2.100:0-cmd:cat", 'bad port "0" (1..65535)'],
    ["tcp:10.0.2.100:1-cmd:  ", "empty command after cmd:"],
    ["tcp:10.0.2.100:1-tcp:127.0.0.1", 'bad target "tcp:127.0.0.1" (tcp:HOST:PORT)'],
    ["tcp:10.0.2.100:1-tcp::80", 'bad target "tcp::80" (tcp:HOST:PORT)'],
    ["tcp:10.0.2.100:1-udp:1.2.3.4:5", 'bad target "udp:1.2.3.4:5" (cmd:COMMAND or tcp:HOST:PORT)'],
  ])("%s → %s", (s, reason) => {
    expect(parseGuestForward(s)).toEqual({ ok: false, reason });
  });
});
