import { describe, expect, it } from "vitest";
import { type Frontend, isIdentifier, NetdevList } from "../../../src/cli/netdev.js";
import { UsageError } from "../../../src/cli/usage-error.js";

const build = (...opts: [Frontend, string][]) => {
  const list = new NetdevList();
  for (const [f, v] of opts) list.add(f, v);
  return list.entries.map((e) => ({
    id: e.config.id,
    hub: e.config.hub,
    type: e.config.type,
    origin: e.origin,
  }));
};
const error = (...opts: [Frontend, string][]): string => {
  try {
    build(...opts);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "no error";
};

describe("NetdevList", () => {
  it("puts -netdev on hubid (default 0) and -net on vlan", () => {
    expect(
      build(
        ["-netdev", "user,id=a"],
        ["-netdev", "user,id=b,hubid=3,net=10.0.3.0/24"],
        ["-net", "user,vlan=2"],
        ["-net", "socket,vlan=2,listen=:1"],
      ),
    ).toEqual([
      { id: "a", hub: 0, type: "user", origin: "-netdev user,id=a" },
      { id: "b", hub: 3, type: "user", origin: "-netdev user,id=b" },
      { id: "user.2", hub: 2, type: "user", origin: "-net user,id=user.2" },
      { id: "socket.0", hub: 2, type: "socket", origin: "-net socket,id=socket.0" },
    ]);
  });

  it("names -net netdevs TYPE.N, counting that type, skipping taken names", () => {
    expect(
      build(
        ["-net", "user"],
        ["-netdev", "user,id=user.1"],
        ["-net", "user,name=mine"],
        ["-net", "user"],
      ).map((e) => e.id),
    ).toEqual(["user.0", "user.1", "mine", "user.3"]);
    expect(build(["-net", "user,id=x"], ["-net", "user"]).map((e) => e.id)).toEqual(["x", "user.1"]);
  });

  it("takes type= and a trailing comma as QEMU does", () => {
    expect(build(["-netdev", "id=a,type=user,"])).toMatchObject([{ id: "a", type: "user" }]);
  });

  it("counts a dgram with a multicast remote as a dgram for its generated name", () => {
    expect(
      build(
        ["-net", "dgram,remote.type=inet,remote.host=230.0.0.1,remote.port=1"],
        ["-net", "dgram,remote.type=inet,remote.host=230.0.0.1,remote.port=2"],
      ),
    ).toMatchObject([
      { id: "dgram.0", type: "socket" },
      { id: "dgram.1", type: "socket" },
    ]);
  });

  it.each<[[Frontend, string][], string]>([
    [[["-netdev", "user"]], "-netdev user: id= is required, such as -netdev user,id=n0"],
    [
      [["-netdev", "user,id=0a"]],
      "-netdev user: id=0a: expected an identifier (a letter, then letters, digits, '-', '.', '_') such as id=n0",
    ],
    [
      [["-netdev", "user,id=n,,0"]],
      "-netdev user: id=n,0: expected an identifier (a letter, then letters, digits, '-', '.', '_') such as id=n0",
    ],
    [
      [["-net", "user,name=a b"]],
      "-net user: name=a b: expected an identifier (a letter, then letters, digits, '-', '.', '_') such as name=n0",
    ],
    [[["-net", "user,id=a,name=b"]], "-net user: give either id= or name=, not both"],
    [
      [
        ["-netdev", "user,id=a"],
        ["-netdev", "socket,id=a,listen=:1"],
      ],
      "-netdev socket,id=a: id a is already used by -netdev user,id=a",
    ],
    [
      [
        ["-net", "user"],
        ["-netdev", "user,id=user.0,net=10.0.3.0/24"],
      ],
      "-netdev user,id=user.0: id user.0 is already used by -net user,id=user.0",
    ],
    [
      [["-netdev", "user,id=a,hubid=-1"]],
      "-netdev user: hubid=-1: expected a hub number 0..2147483647 such as hubid=1",
    ],
    [
      [["-netdev", "user,id=a,hubid=2147483648"]],
      "-netdev user: hubid=2147483648: expected a hub number 0..2147483647 such as hubid=1",
    ],
    [[["-net", "user,vlan=x"]], "-net user: vlan=x: expected a hub number 0..2147483647 such as vlan=1"],
    [[["-netdev", "user,id=a,vlan=1"]], "-netdev user: vlan=1: belongs to -net; -netdev takes hubid=N"],
    [[["-net", "user,hubid=1"]], "-net user: hubid=1: belongs to -netdev; -net takes vlan=N"],
    [
      [["-netdev", "tap,id=t0,fd=3"]],
      "-netdev tap: fd=3: not supported: usernet does not take file descriptors from a parent",
    ],
    [
      [["-net", "nic,model=e1000"]],
      "-net nic: is a QEMU guest option; it belongs on the QEMU command line, not usernet's",
    ],
    [
      [["-net", "none"]],
      "-net none: is a QEMU guest option; it belongs on the QEMU command line, not usernet's",
    ],
    [[["-netdev", "hubport,id=h,hubid=1"]], "-netdev hubport: not needed: every -netdev takes hubid=N"],
    [
      [["-netdev", "bridge,id=b"]],
      '-netdev: unknown type "bridge" (accepted: user, socket, stream, dgram, tap, vde, websocket, vxlan)',
    ],
    [
      [["-netdev", "User,id=b"]],
      '-netdev: unknown type "User" (accepted: user, socket, stream, dgram, tap, vde, websocket, vxlan)',
    ],
    [
      [["-netdev", "toString,id=b"]],
      '-netdev: unknown type "toString" (accepted: user, socket, stream, dgram, tap, vde, websocket, vxlan)',
    ],
    [[["-netdev", ",id=b"]], "-netdev: missing type: expected TYPE,key=value,... such as -netdev user,id=n0"],
    [[["-netdev", "id=b"]], "-netdev: missing type: expected TYPE,key=value,... such as -netdev user,id=n0"],
    [[["-netdev", ""]], "-netdev: missing type: expected TYPE,key=value,... such as -netdev user,id=n0"],
    [
      [["-netdev", '{"type":"user","id":"n0"}']],
      "-netdev: JSON syntax is not supported; use -netdev TYPE,key=value,...",
    ],
    [
      [["-netdev", "socket,id=s,foo=1"]],
      '-netdev socket: unknown option "foo" (accepted: id, hubid, listen, connect, mcast, udp, localaddr)',
    ],
    [
      [["-net", "socket,foo=1"]],
      '-net socket: unknown option "foo" (accepted: vlan, name, id, listen, connect, mcast, udp, localaddr)',
    ],
  ])("%j → %s", (opts, message) => {
    expect(error(...opts)).toBe(message);
  });

  it("knows QEMU identifiers", () => {
    expect(isIdentifier("n0")).toBe(true);
    expect(isIdentifier("user.0")).toBe(true);
    expect(isIdentifier("a-b_c")).toBe(true);
    expect(isIdentifier("_a")).toBe(false);
    expect(isIdentifier("")).toBe(false);
  });
});
