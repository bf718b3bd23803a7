import { describe, expect, it } from "vitest";
import { NetdevList } from "../../../src/cli/netdev.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { NetdevConfig } from "../../../src/config.js";

const socket = (opts: string): NetdevConfig => new NetdevList().add("-netdev", `socket,id=s0,${opts}`);
const error = (opts: string): string => {
  try {
    socket(opts);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "no error";
};

describe("-netdev socket", () => {
  it.each<[string, Partial<NetdevConfig>]>([
    ["listen=127.0.0.1:8010", { mode: "listen", addr: { host: "127.0.0.1", port: 8010 } }],
    ["listen=:8010", { mode: "listen", addr: { host: "0.0.0.0", port: 8010 } }],
    ["listen=localhost:8010", { mode: "listen", addr: { host: "localhost", port: 8010 } }],
    ["connect=127.0.0.1:8010", { mode: "connect", addr: { host: "127.0.0.1", port: 8010 } }],
    ["mcast=230.0.0.1:1234", { mode: "mcast", addr: { host: "230.0.0.1", port: 1234 } }],
    [
      "mcast=230.0.0.1:1234,localaddr=127.0.0.1",
      { mode: "mcast", addr: { host: "230.0.0.1", port: 1234 }, localAddr: { host: "127.0.0.1", port: 0 } },
    ],
    [
      "udp=127.0.0.1:8012,localaddr=127.0.0.1:8011",
      { mode: "udp", addr: { host: "127.0.0.1", port: 8012 }, localAddr: { host: "127.0.0.1", port: 8011 } },
    ],
    [
      "udp=127.0.0.1:8012,localaddr=:8011",
      { mode: "udp", addr: { host: "127.0.0.1", port: 8012 }, localAddr: { host: "0.0.0.0", port: 8011 } },
    ],
  ])("%s", (opts, changes) => {
    expect(socket(opts)).toEqual({ type: "socket", id: "s0", hub: 0, ...changes });
  });

  it.each([
    ["", "-netdev socket: exactly one of listen=, connect=, mcast= or udp= is required"],
    [
      "listen=:1,connect=127.0.0.1:1",
      "-netdev socket: exactly one of listen=, connect=, mcast= or udp= is required",
    ],
    ["listen=8010", "-netdev socket: listen=8010: expected [HOST]:PORT such as listen=127.0.0.1:8010"],
    ["listen=:0", "-netdev socket: listen=:0: expected [HOST]:PORT such as listen=127.0.0.1:8010"],
    ["listen=:1,localaddr=127.0.0.1", "-netdev socket: localaddr=127.0.0.1: goes only with mcast= or udp="],
    ["connect=:8010", "-netdev socket: connect=:8010: needs a host, such as connect=127.0.0.1:8010"],
    [
      "mcast=10.0.0.1:1234",
      "-netdev socket: mcast=10.0.0.1:1234: expected GROUP:PORT with GROUP in 224.0.0.0/4 such as mcast=230.0.0.1:1234",
    ],
    [
      "mcast=:1234",
      "-netdev socket: mcast=:1234: expected GROUP:PORT with GROUP in 224.0.0.0/4 such as mcast=230.0.0.1:1234",
    ],
    [
      "mcast=230.0.0.1:1234,localaddr=127.0.0.1:5",
      "-netdev socket: localaddr=127.0.0.1:5: expected an IPv4 address with mcast=",
    ],
    ["udp=127.0.0.1:8012", "-netdev socket: localaddr=[HOST]:PORT is required with udp="],
    ["udp=:8012,localaddr=:1", "-netdev socket: udp=:8012: needs a host, such as udp=127.0.0.1:8012"],
    [
      "udp=127.0.0.1:8012,localaddr=127.0.0.1",
      "-netdev socket: localaddr=127.0.0.1: expected [HOST]:PORT with udp=",
    ],
    ["fd=3", "-netdev socket: fd=3: not supported: usernet does not take file descriptors from a parent"],
  ])("%j → %s", (opts, message) => {
    expect(error(opts)).toBe(message);
  });
});
