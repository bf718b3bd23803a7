/** `-netdev vde`: joining a switch (QEMU's options), being one (listen=), what is refused. */
import { describe, expect, it } from "vitest";
import { portRequest } from "../../../src/cli/ctl-ports.js";

const portRequestBody = (netdev: string) => portRequest(netdev, "0").body;

import { NetdevList } from "../../../src/cli/netdev.js";
import { UsageError } from "../../../src/cli/usage-error.js";

const vde = (s: string) => new NetdevList().add("-netdev", `vde,${s}`);
const error = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  throw new Error("no UsageError");
};

describe("-netdev vde", () => {
  it("joins a switch with QEMU's sock=, port=, group=, mode=", () => {
    expect(vde("id=v0,sock=/tmp/sw")).toEqual({
      type: "vde",
      id: "v0",
      hub: 0,
      mode: "join",
      dir: "/tmp/sw",
    });
    expect(vde("id=v0,hubid=3,sock=/tmp/sw,port=5,group=kvm,mode=0770")).toEqual({
      type: "vde",
      id: "v0",
      hub: 3,
      mode: "join",
      dir: "/tmp/sw",
      port: 5,
      group: "kvm",
      permissions: 0o770,
    });
    expect(vde("id=v0,sock=sw,port=0,group=100")).toEqual({
      type: "vde",
      id: "v0",
      hub: 0,
      mode: "join",
      dir: "sw",
      group: "100",
    });
    expect(new NetdevList().add("-net", "vde,vlan=1,sock=/s")).toMatchObject({ id: "vde.0", hub: 1 });
  });

  it("is the switch with listen=", () => {
    expect(vde("id=v0,listen=/run/user/1000/sw")).toEqual({
      type: "vde",
      id: "v0",
      hub: 0,
      mode: "listen",
      dir: "/run/user/1000/sw",
    });
  });

  it.each([
    [
      "id=v0",
      "-netdev vde: give sock=DIR (join a vde_switch) or listen=DIR (be the switch), exactly one of them",
    ],
    [
      "id=v0,sock=/a,listen=/b",
      "-netdev vde: give sock=DIR (join a vde_switch) or listen=DIR (be the switch), exactly one of them",
    ],
    ["id=v0,listen=/b,port=3", "-netdev vde: port= belongs to sock= (joining a switch)"],
    ["id=v0,sock=/a,port=x", "-netdev vde: port=x: expected a switch port 0..16777215 such as port=3"],
    ["id=v0,sock=/a,mode=0999", "-netdev vde: mode=0999: expected octal permissions such as mode=0770"],
    ["id=v0,sock=/a,group=a:b", "-netdev vde: group=a:b: expected a group name or number such as group=kvm"],
    [
      `id=v0,sock=/${"a".repeat(100)}`,
      `-netdev vde: sock=/${"a".repeat(100)}: expected a directory path of at most 100 bytes such as sock=/tmp/vde.sw`,
    ],
    [
      "id=v0,sock=",
      "-netdev vde: sock=: expected a directory path of at most 100 bytes such as sock=/tmp/vde.sw",
    ],
    [
      "id=v0,sock=/a,bogus=1",
      '-netdev vde: unknown option "bogus" (accepted: id, hubid, sock, listen, port, group, mode)',
    ],
  ])("%s → %s", (opts, message) => {
    expect(error(() => vde(opts))).toContain(message);
  });
});

describe("usernet ctl ports add: -netdev values as API bodies", () => {
  it("turns vde netdevs into POST /v1/hubs/:id/ports bodies", () => {
    expect(portRequestBody("vde,id=v1,listen=/tmp/sw")).toEqual({ type: "vde", id: "v1", listen: "/tmp/sw" });
    expect(portRequestBody("vde,id=v1,sock=/tmp/sw,port=2,group=kvm,mode=770")).toEqual({
      type: "vde",
      id: "v1",
      sock: "/tmp/sw",
      port: 2,
      group: "kvm",
      mode: "770",
    });
  });

  it("does the other port kinds the API takes", () => {
    expect(portRequestBody("stream,id=s1,server=on,addr.type=unix,addr.path=/tmp/s.sock")).toEqual({
      type: "stream",
      id: "s1",
      server: true,
      addr: { type: "unix", path: "/tmp/s.sock" },
      reconnect: 0,
    });
    expect(portRequestBody("socket,id=s2,listen=127.0.0.1:9000")).toMatchObject({
      type: "socket",
      mode: "listen",
      addr: { host: "127.0.0.1", port: 9000 },
    });
  });

  it("refuses what cannot be added at run time, and a hub given twice", () => {
    expect(error(() => portRequestBody("user,id=u1"))).toContain("a user netdev cannot be added at run time");
    expect(error(() => portRequestBody("tap,id=t1"))).toContain("a tap netdev cannot be added at run time");
    expect(error(() => portRequestBody("vde,id=v1,hubid=2,listen=/x"))).toContain("give the hub once");
    expect(portRequest("vde,id=v1,hubid=2,listen=/x").hub).toBe(2);
    expect(error(() => portRequestBody("vde,listen=/x"))).toContain("id= is required");
  });
});
