/**
 * The e2e harness's pure parts, without QEMU: ping output judging, reading printed
 * QEMU command lines, the USERNET_E2E mode, the guest's QEMU argv. These run
 * everywhere, so a broken parser cannot hide behind skipped e2e suites.
 */
import { fc, test as propTest } from "@fast-check/vitest";
import { describe, expect, test } from "vitest";
import { qemuArgs } from "./harness/guest.js";
import { parsePing } from "./harness/ping.js";
import { e2eMode } from "./harness/prereqs.js";
import { guestNetworkArgs, qemuLines, splitShellWords } from "./harness/qemu-cmdline.js";
import { internalErrorCount, internalErrorLines } from "./harness/usernet.js";

const busyboxOk = `PING 10.0.2.2 (10.0.2.2): 56 data bytes
64 bytes from 10.0.2.2: seq=0 ttl=255 time=10.296 ms
64 bytes from 10.0.2.2: seq=1 ttl=255 time=2.064 ms
64 bytes from 10.0.2.2: seq=2 ttl=255 time=1.940 ms

--- 10.0.2.2 ping statistics ---
3 packets transmitted, 3 packets received, 0% packet loss
round-trip min/avg/max = 1.940/4.766/10.296 ms
`;

const busyboxLoss = `PING 10.0.2.99 (10.0.2.99): 56 data bytes

--- 10.0.2.99 ping statistics ---
2 packets transmitted, 0 packets received, 100% packet loss
`;

describe("parsePing", () => {
  test("reads busybox's summary and reply lines", () => {
    expect(parsePing(busyboxOk)).toEqual({
      transmitted: 3,
      received: 3,
      lossPercent: 0,
      replies: [
        { from: "10.0.2.2", seq: 0, ttl: 255 },
        { from: "10.0.2.2", seq: 1, ttl: 255 },
        { from: "10.0.2.2", seq: 2, ttl: 255 },
      ],
    });
  });

  test("reads total loss", () => {
    expect(parsePing(busyboxLoss)).toMatchObject({
      transmitted: 2,
      received: 0,
      lossPercent: 100,
      replies: [],
    });
  });

  test("reads iputils' spelling", () => {
    const out =
      "64 bytes from 10.0.2.2: icmp_seq=1 ttl=64 time=0.1 ms\n1 packets transmitted, 1 received, 0% packet loss, time 0ms\n";
    expect(parsePing(out)).toMatchObject({ transmitted: 1, received: 1, lossPercent: 0 });
  });

  test("no summary, no result", () => {
    expect(parsePing("ping: sendto: Network is unreachable\n")).toBeUndefined();
  });
});

describe("splitShellWords", () => {
  test("quotes, escapes and comments", () => {
    expect(splitShellWords(`a 'b c' "d \\"e\\"" f\\ g  # the rest`)).toEqual(["a", "b c", 'd "e"', "f g"]);
    expect(splitShellWords("x#y 'it'\\''s'")).toEqual(["x#y", "it's"]);
    expect(() => splitShellWords("a 'b")).toThrow(/unterminated/);
  });

  const word = fc.string({ minLength: 1, maxLength: 12 });
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  propTest.prop([fc.array(word, { minLength: 1, maxLength: 6 })])(
    "single-quoted words come back as they were",
    (ws) => {
      expect(splitShellWords(ws.map(quote).join(" "))).toEqual(ws);
    },
  );
});

describe("guestNetworkArgs", () => {
  test("keeps the network options of a printed attach line", () => {
    const line =
      "qemu-system-x86_64 ... -netdev 'stream,id=net0,server=off,addr.type=unix,addr.path=/run/u s/hub0.sock' -device virtio-net-pci,netdev=net0  # hub 0 via unix0";
    expect(guestNetworkArgs(line)).toEqual([
      "-netdev",
      "stream,id=net0,server=off,addr.type=unix,addr.path=/run/u s/hub0.sock",
      "-device",
      "virtio-net-pci,netdev=net0",
    ]);
  });

  test("drops what the harness supplies", () => {
    const line =
      "qemu-system-x86_64 -enable-kvm -m 1G -nographic -kernel bz -netdev socket,id=n,connect=:1 -device e1000,netdev=n";
    expect(guestNetworkArgs(line)).toEqual([
      "-netdev",
      "socket,id=n,connect=:1",
      "-device",
      "e1000,netdev=n",
    ]);
    expect(() => guestNetworkArgs("ls -l")).toThrow(/not a QEMU/);
  });

  test("qemuLines picks the command lines out of other output", () => {
    const out =
      "# attach a QEMU guest with one of:\nqemu-system-x86_64 ... -netdev a\nusernet info: up\n  qemu-system-x86_64 ... -netdev b\n";
    expect(qemuLines(out)).toEqual(["qemu-system-x86_64 ... -netdev a", "qemu-system-x86_64 ... -netdev b"]);
  });
});

describe("e2eMode", () => {
  test("required fails, unset skips, off skips everything", () => {
    expect(e2eMode({ USERNET_E2E: "required" })).toBe("required");
    expect(e2eMode({})).toBe("auto");
    expect(e2eMode({ USERNET_E2E: "off" })).toBe("off");
  });
});

describe("qemuArgs", () => {
  const image = { kernel: "/k", initrd: "/i", kernelVersion: "v", accel: "tcg" as const };

  test("kernel command line carries the guest's address; the NIC gets the MAC", () => {
    const a = qemuArgs(
      { netdev: "user,id=n0", nic: "e1000", mac: "52:54:00:00:00:01", ip: "10.0.2.16/24", gw: "10.0.2.2" },
      image,
    );
    expect(a[a.indexOf("-append") + 1]).toBe(
      "console=ttyS0 quiet panic=-1 no_timer_check usernet.ip=10.0.2.16/24 usernet.gw=10.0.2.2",
    );
    expect(a.slice(-4)).toEqual([
      "-netdev",
      "user,id=n0",
      "-device",
      "e1000,netdev=n0,mac=52:54:00:00:00:01",
    ]);
    expect(a[a.indexOf("-accel") + 1]).toBe("tcg");
  });

  test("raw network arguments replace netdev/nic", () => {
    const a = qemuArgs({ rawArgs: ["-netdev", "x", "-device", "y"] }, image);
    expect(a.slice(-4)).toEqual(["-netdev", "x", "-device", "y"]);
    expect(() => qemuArgs({}, image)).toThrow(/netdev or rawArgs/);
  });
});

describe("internal errors in usernet's log", () => {
  test("reads the counter from the lines src/log.ts writes", () => {
    const clean = "usernet info: hub 0: u0: user stack 10.0.2.0/24\nusernet error: cannot save DHCP leases\n";
    expect(internalErrorCount(clean)).toBe(0);
    const bug = `${clean}usernet error: internal error in a TFTP request: x is undefined count=1 stack=TypeError: x is undefined
    at TftpServer.handle (file:///dist/services/tftp/tftp-server.js:10:5)
usernet error: internal error in hub 0: send to port g0: boom count=4 stack=Error: boom
    at Port.send (file:///dist/ports/x.js:1:1)
`;
    expect(internalErrorLines(bug)).toHaveLength(2);
    expect(internalErrorCount(bug)).toBe(4);
  });
});
