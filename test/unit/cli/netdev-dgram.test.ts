import { describe, expect, it } from "vitest";
import { NetdevList } from "../../../src/cli/netdev.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { NetdevConfig } from "../../../src/config.js";

const dgram = (opts: string): NetdevConfig => new NetdevList().add("-netdev", `dgram,id=d0,${opts}`);
const error = (opts: string): string => {
  try {
    dgram(opts);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "no error";
};
const local = "local.type=inet,local.host=127.0.0.1,local.port=8011";
const remote = "remote.type=inet,remote.host=127.0.0.1,remote.port=8012";
const group = "remote.type=inet,remote.host=230.0.0.1,remote.port=1234";

describe("-netdev dgram", () => {
  it("makes a unicast pair", () => {
    expect(dgram(`${local},${remote}`)).toEqual({
      type: "dgram",
      id: "d0",
      hub: 0,
      local: { type: "inet", host: "127.0.0.1", port: 8011 },
      remote: { type: "inet", host: "127.0.0.1", port: 8012 },
    });
    expect(dgram(`local.type=inet,local.host=,local.port=1,${remote}`)).toMatchObject({
      local: { type: "inet", host: "0.0.0.0", port: 1 },
    });
  });

  it("makes a multicast remote a socket mcast netdev", () => {
    expect(dgram(group)).toEqual({
      type: "socket",
      id: "d0",
      hub: 0,
      mode: "mcast",
      addr: { host: "230.0.0.1", port: 1234 },
    });
    expect(dgram(`${group},local.type=inet,local.host=127.0.0.1,local.port=0`)).toEqual({
      type: "socket",
      id: "d0",
      hub: 0,
      mode: "mcast",
      addr: { host: "230.0.0.1", port: 1234 },
      localAddr: { host: "127.0.0.1", port: 0 },
    });
  });

  it.each([
    [
      "local.type=unix,local.path=/x",
      "-netdev dgram: local.path=/x: not supported: Node has no unix datagram sockets",
    ],
    ["local.type=unix", "-netdev dgram: local.type=unix: not supported: Node has no unix datagram sockets"],
    [
      `${local},remote.type=unix`,
      "-netdev dgram: remote.type=unix: not supported: Node has no unix datagram sockets",
    ],
    [
      "local.type=fd",
      "-netdev dgram: local.type=fd: not supported: usernet does not take file descriptors from a parent",
    ],
    [
      "local.type=udp,local.host=a,local.port=1",
      "-netdev dgram: local.type=udp: expected inet such as local.type=inet",
    ],
    [local, "-netdev dgram: remote.type=inet,remote.host=HOST,remote.port=PORT is required"],
    [
      remote,
      "-netdev dgram: local.type=inet,local.host=HOST,local.port=PORT is required with a unicast remote",
    ],
    ["local.host=127.0.0.1", "-netdev dgram: local.type= is required: inet such as local.type=inet"],
    ["local.type=inet,local.port=1", "-netdev dgram: local.host= is required with local.type=inet"],
    ["local.type=inet,local.host=127.0.0.1", "-netdev dgram: local.port= is required with local.type=inet"],
    [
      `${local},remote.type=inet,remote.host=127.0.0.1,remote.port=0`,
      "-netdev dgram: remote.port=0: expected 1..65535 such as remote.port=8012",
    ],
    [
      `local.type=inet,local.host=127.0.0.1,local.port=x,${remote}`,
      "-netdev dgram: local.port=x: expected 1..65535 such as local.port=8011",
    ],
    [
      `${local},remote.type=inet,remote.host=,remote.port=1`,
      "-netdev dgram: remote.host=: expected HOST such as remote.host=127.0.0.1",
    ],
    [
      `local.type=inet,local.host=!,local.port=1,${remote}`,
      "-netdev dgram: local.host=!: expected HOST such as local.host=127.0.0.1",
    ],
    [
      `${group},local.type=inet,local.host=localhost,local.port=0`,
      "-netdev dgram: local.host=localhost: expected the IPv4 address of an interface with a multicast remote",
    ],
  ])("%s → %s", (opts, message) => {
    expect(error(opts)).toBe(message);
  });
});
