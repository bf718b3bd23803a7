/** `-netdev vxlan`: Linux's vxlan options in QEMU's grammar. */
import { describe, expect, it } from "vitest";
import { checkBindConflicts } from "../../../src/cli/binds.js";
import { NetdevList } from "../../../src/cli/netdev.js";
import { UsageError } from "../../../src/cli/usage-error.js";

const vx = (s: string) => new NetdevList().add("-netdev", `vxlan,${s}`);
const error = (s: string) => {
  try {
    vx(s);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  throw new Error("no UsageError");
};

describe("-netdev vxlan", () => {
  it("takes a VNI, repeatable remotes, a local address, the port", () => {
    expect(vx("id=vx0,vni=42,remote=192.0.2.1,remote=192.0.2.3:8472,local=192.0.2.2")).toEqual({
      type: "vxlan",
      id: "vx0",
      hub: 0,
      vni: 42,
      remotes: [
        { host: "192.0.2.1", port: 4789 },
        { host: "192.0.2.3", port: 8472 },
      ],
      local: { host: "192.0.2.2", port: 4789 },
      dstport: 4789,
    });
    expect(
      vx(
        "id=vx0,hubid=1,vni=16777215,group=239.1.1.1,dev=veth0,local=0.0.0.0,dstport=8472,ageing=60,maxaddress=10",
      ),
    ).toEqual({
      type: "vxlan",
      id: "vx0",
      hub: 1,
      vni: 16777215,
      remotes: [],
      group: { host: "239.1.1.1", port: 8472 },
      dev: "veth0",
      local: { host: "0.0.0.0", port: 8472 },
      dstport: 8472,
      ageingSeconds: 60,
      maxMacs: 10,
    });
    expect(
      new NetdevList().add("-net", "vxlan,vlan=2,vni=0,remote=10.0.0.1,local=10.0.0.2:5000"),
    ).toMatchObject({
      id: "vxlan.0",
      hub: 2,
      local: { host: "10.0.0.2", port: 5000 },
    });
  });

  it("refuses bad input with the accepted form", () => {
    expect(error("id=v,remote=1.2.3.4,local=1.2.3.5")).toBe(
      "-netdev vxlan: vni= is required, such as vni=42",
    );
    expect(error("id=v,vni=16777216,remote=1.2.3.4,local=1.2.3.5")).toMatch(
      /^-netdev vxlan: vni=16777216: expected/,
    );
    expect(error("id=v,vni=1,local=1.2.3.5")).toBe(
      "-netdev vxlan: remote=IP[:PORT] (repeatable) or group=MCAST is required",
    );
    expect(error("id=v,vni=1,remote=1.2.3.4,group=239.0.0.1,local=1.2.3.5")).toBe(
      "-netdev vxlan: give remote= or group=, not both",
    );
    expect(error("id=v,vni=1,remote=1.2.3.4")).toMatch(/^-netdev vxlan: local=IP\[:PORT\] is required/);
    expect(error("id=v,vni=1,remote=host.example,local=1.2.3.5")).toMatch(
      /^-netdev vxlan: remote=host.example: expected/,
    );
    expect(error("id=v,vni=1,remote=239.0.0.1,local=1.2.3.5")).toMatch(/use group= for multicast/);
    expect(error("id=v,vni=1,group=10.0.0.1,local=1.2.3.5")).toMatch(
      /^-netdev vxlan: group=10.0.0.1: expected/,
    );
    expect(error("id=v,vni=1,remote=1.2.3.4:0,local=1.2.3.5")).toMatch(/^-netdev vxlan: remote=1.2.3.4:0/);
    expect(error("id=v,vni=1,remote=1.2.3.4,local=1.2.3.5,dstport=x")).toMatch(
      /dstport=x: expected a UDP port/,
    );
    expect(error("id=v,vni=1,remote=1.2.3.4,local=1.2.3.5,dev=a/b")).toMatch(/dev=a\/b: expected/);
    expect(error("id=v,vni=1,remote=1.2.3.4,local=1.2.3.5,id6=on")).toMatch(/IPv4 only/);
  });

  it("two unicast VXLAN ports on one local address and port are caught at parse time", () => {
    const list = new NetdevList();
    list.add("-netdev", "vxlan,id=a,vni=1,remote=10.0.0.1,local=10.0.0.2");
    list.add("-netdev", "vxlan,id=b,vni=2,remote=10.0.0.3,local=10.0.0.2");
    expect(() => checkBindConflicts(list.entries)).toThrow(
      "-netdev vxlan,id=b: udp 10.0.0.2:4789 is already taken by -netdev vxlan,id=a",
    );
    list.add("-netdev", "vxlan,id=c,vni=3,group=239.1.1.1,local=10.0.0.2");
    list.add("-netdev", "vxlan,id=d,vni=3,group=239.1.1.1,local=10.0.0.2");
    expect(() => checkBindConflicts(list.entries.slice(2))).not.toThrow();
  });
});
