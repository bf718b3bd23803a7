import { describe, expect, it } from "vitest";
import { formatQemuAttachCommands } from "../../../src/cli/attach.js";
import { defaultUserNetdev } from "../../../src/cli/netdev-user.js";
import { parseCommandLine } from "../../../src/cli/parse.js";
import type { Config, NetdevConfig } from "../../../src/config.js";

const lines = (...netdevs: NetdevConfig[]) => formatQemuAttachCommands({ netdevs, logLevel: "info" });
const q = "qemu-system-x86_64 ... -netdev";
const dev = "-device virtio-net-pci,netdev=net0";

describe("formatQemuAttachCommands", () => {
  it("gives the defaults' unix socket with its hub (and no TCP line)", () => {
    const r = parseCommandLine([], { XDG_RUNTIME_DIR: "/run/user/1000" }, () => "");
    const config = (r as { config: Config }).config;
    expect(formatQemuAttachCommands(config)).toEqual([
      `${q} stream,id=net0,server=off,addr.type=unix,addr.path=/run/user/1000/usernet/hub0.sock ${dev}  # hub 0 via unix0`,
    ]);
  });

  it("points QEMU's -netdev vde at usernet's switch, or at the vde_switch usernet joined", () => {
    expect(
      lines(
        { type: "vde", id: "v0", hub: 0, mode: "listen", dir: "/tmp/usw" },
        { type: "vde", id: "v1", hub: 1, mode: "join", dir: "/tmp/a,b" },
      ),
    ).toEqual([
      `${q} vde,id=net0,sock=/tmp/usw ${dev}  # hub 0 via v0`,
      `${q} vde,id=net0,sock=/tmp/a,,b ${dev}  # hub 1 via v1`,
    ]);
  });

  it("reaches a wildcard listener on loopback", () => {
    expect(
      lines({ type: "socket", id: "s0", hub: 2, mode: "listen", addr: { host: "0.0.0.0", port: 9000 } }),
    ).toEqual([
      `${q} stream,id=net0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=9000 ${dev}  # hub 2 via s0`,
      `${q} socket,id=net0,connect=127.0.0.1:9000 ${dev}  # hub 2 via s0`,
    ]);
  });

  it("makes QEMU listen where usernet connects", () => {
    expect(
      lines({ type: "socket", id: "c", hub: 0, mode: "connect", addr: { host: "127.0.0.1", port: 9001 } }),
    ).toEqual([
      `${q} stream,id=net0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=9001 ${dev}  # hub 0 via c`,
      `${q} socket,id=net0,listen=127.0.0.1:9001 ${dev}  # hub 0 via c`,
    ]);
    expect(
      lines({
        type: "stream",
        id: "c",
        hub: 1,
        server: false,
        reconnect: 1,
        addr: { type: "unix", path: "/s" },
      }),
    ).toEqual([`${q} stream,id=net0,server=on,addr.type=unix,addr.path=/s ${dev}  # hub 1 via c`]);
  });

  it("joins the same multicast group", () => {
    expect(
      lines({ type: "socket", id: "m", hub: 0, mode: "mcast", addr: { host: "230.0.0.1", port: 1234 } }),
    ).toEqual([
      `${q} socket,id=net0,mcast=230.0.0.1:1234 ${dev}  # hub 0 via m`,
      `${q} dgram,id=net0,remote.type=inet,remote.host=230.0.0.1,remote.port=1234 ${dev}  # hub 0 via m`,
    ]);
    expect(
      lines({
        type: "socket",
        id: "m",
        hub: 0,
        mode: "mcast",
        addr: { host: "230.0.0.1", port: 1234 },
        localAddr: { host: "127.0.0.1", port: 0 },
      }),
    ).toEqual([
      `${q} socket,id=net0,mcast=230.0.0.1:1234,localaddr=127.0.0.1 ${dev}  # hub 0 via m`,
      `${q} dgram,id=net0,remote.type=inet,remote.host=230.0.0.1,remote.port=1234,local.type=inet,local.host=127.0.0.1,local.port=0 ${dev}  # hub 0 via m`,
    ]);
  });

  it("swaps the two ends of a UDP pair", () => {
    const mirrored = [
      `${q} socket,id=net0,udp=127.0.0.1:8011,localaddr=127.0.0.1:8012 ${dev}  # hub 0 via u`,
      `${q} dgram,id=net0,local.type=inet,local.host=127.0.0.1,local.port=8012,remote.type=inet,remote.host=127.0.0.1,remote.port=8011 ${dev}  # hub 0 via u`,
    ];
    expect(
      lines({
        type: "socket",
        id: "u",
        hub: 0,
        mode: "udp",
        addr: { host: "127.0.0.1", port: 8012 },
        localAddr: { host: "0.0.0.0", port: 8011 },
      }),
    ).toEqual(mirrored);
    expect(
      lines({
        type: "dgram",
        id: "u",
        hub: 0,
        local: { type: "inet", host: "127.0.0.1", port: 8011 },
        remote: { type: "inet", host: "127.0.0.1", port: 8012 },
      }),
    ).toEqual(mirrored);
  });

  it("escapes commas for QEMU and quotes for the shell", () => {
    expect(
      lines({
        type: "stream",
        id: "x",
        hub: 0,
        server: true,
        reconnect: 0,
        addr: { type: "unix", path: "/tmp/my vm,1's.sock" },
      }),
    ).toEqual([
      `${q} 'stream,id=net0,server=off,addr.type=unix,addr.path=/tmp/my vm,,1'\\''s.sock' ${dev}  # hub 0 via x`,
    ]);
  });

  it("has nothing for user netdevs and TAP", () => {
    expect(lines(defaultUserNetdev("n0", 0), { type: "tap", id: "t", hub: 0, ifname: "tap0" })).toEqual([]);
  });
});
