import { describe, expect, it } from "vitest";
import { NetdevList } from "../../../src/cli/netdev.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { NetdevConfig } from "../../../src/config.js";

const stream = (opts: string): NetdevConfig => new NetdevList().add("-netdev", `stream,id=st0,${opts}`);
const error = (opts: string): string => {
  try {
    stream(opts);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "no error";
};
const inet = "addr.type=inet,addr.host=127.0.0.1,addr.port=8010";

describe("-netdev stream", () => {
  it.each<[string, Partial<NetdevConfig>]>([
    [`server=on,${inet}`, { server: true, addr: { type: "inet", host: "127.0.0.1", port: 8010 } }],
    [inet, { server: false, addr: { type: "inet", host: "127.0.0.1", port: 8010 } }],
    [
      `server=off,${inet},reconnect=5`,
      { server: false, reconnect: 5, addr: { type: "inet", host: "127.0.0.1", port: 8010 } },
    ],
    [
      "server=on,addr.type=inet,addr.host=,addr.port=8010",
      { server: true, addr: { type: "inet", host: "0.0.0.0", port: 8010 } },
    ],
    [
      "server=off,addr.type=inet,addr.host=localhost,addr.port=8010",
      { server: false, addr: { type: "inet", host: "localhost", port: 8010 } },
    ],
    [
      `server=on,${inet},addr.numeric=on,addr.keep-alive=off,addr.ipv4=on,addr.ipv6=off`,
      { server: true, addr: { type: "inet", host: "127.0.0.1", port: 8010 } },
    ],
    [
      "server=on,addr.type=unix,addr.path=/run/u.sock",
      { server: true, addr: { type: "unix", path: "/run/u.sock" } },
    ],
    [
      "server=on,addr.type=unix,addr.path=/run/a,,b.sock",
      { server: true, addr: { type: "unix", path: "/run/a,b.sock" } },
    ],
  ])("%s", (opts, changes) => {
    expect(stream(opts)).toEqual({ type: "stream", id: "st0", hub: 0, reconnect: 0, ...changes });
  });

  it.each([
    ["server=on", "-netdev stream: addr.type= is required: inet or unix such as addr.type=inet"],
    [
      "addr.type=fd,addr.str=3",
      "-netdev stream: addr.str=3: not supported: usernet does not take file descriptors from a parent",
    ],
    [
      "addr.type=fd",
      "-netdev stream: addr.type=fd: not supported: usernet does not take file descriptors from a parent",
    ],
    ["addr.type=vsock", "-netdev stream: addr.type=vsock: not supported"],
    ["addr.type=tcp", "-netdev stream: addr.type=tcp: expected inet or unix such as addr.type=inet"],
    ["addr.type=inet,addr.port=1", "-netdev stream: addr.host= is required with addr.type=inet"],
    ["addr.type=inet,addr.host=127.0.0.1", "-netdev stream: addr.port= is required with addr.type=inet"],
    [
      "addr.type=inet,addr.host=,addr.port=1",
      "-netdev stream: addr.host=: expected HOST such as addr.host=127.0.0.1",
    ],
    [
      "addr.type=inet,addr.host=a b,addr.port=1",
      "-netdev stream: addr.host=a b: expected HOST such as addr.host=127.0.0.1",
    ],
    [
      "addr.type=inet,addr.host=h,addr.port=0",
      "-netdev stream: addr.port=0: expected 1..65535 such as addr.port=8010",
    ],
    [
      `${inet},addr.numeric=on,addr.host=localhost`,
      "-netdev stream: addr.host= given twice (none may repeat)",
    ],
    [
      "addr.type=inet,addr.host=localhost,addr.port=1,addr.numeric=on",
      "-netdev stream: addr.host=localhost: addr.numeric=on needs an IPv4 address",
    ],
    [
      `${inet},addr.to=8020`,
      "-netdev stream: addr.to=8020: not supported: usernet listens on exactly the port given",
    ],
    [
      `${inet},addr.keep-alive=on`,
      "-netdev stream: addr.keep-alive=on: expected off (keep-alive is not supported) such as addr.keep-alive=off",
    ],
    [`${inet},addr.ipv4=off`, "-netdev stream: addr.ipv4=off: expected on (IPv4 only) such as addr.ipv4=on"],
    [`${inet},addr.ipv6=on`, "-netdev stream: addr.ipv6=on: expected off (IPv4 only) such as addr.ipv6=off"],
    [`${inet},addr.path=/x`, "-netdev stream: addr.path= belongs to addr.type=unix"],
    ["addr.type=unix,addr.path=/x,addr.port=1", "-netdev stream: addr.port= belongs to addr.type=inet"],
    ["addr.type=unix", "-netdev stream: addr.path= is required with addr.type=unix"],
    [
      "addr.type=unix,addr.path=",
      "-netdev stream: addr.path=: expected a socket path of at most 107 bytes such as addr.path=/run/usernet.sock",
    ],
    [
      `addr.type=unix,addr.path=/${"p".repeat(107)}`,
      `-netdev stream: addr.path=/${"p".repeat(107)}: expected a socket path of at most 107 bytes such as addr.path=/run/usernet.sock`,
    ],
    [
      "addr.type=unix,addr.path=/x,addr.abstract=on",
      "-netdev stream: addr.abstract=on: not supported: abstract unix sockets",
    ],
    [`server=on,${inet},reconnect=5`, "-netdev stream: reconnect=5: only for clients (server=off)"],
    [`${inet},reconnect=-1`, "-netdev stream: reconnect=-1: expected seconds 0..86400 such as reconnect=5"],
    [`${inet},server=maybe`, "-netdev stream: server=maybe: expected on or off such as server=on"],
  ])("%s → %s", (opts, message) => {
    expect(error(opts)).toBe(message);
  });
});
