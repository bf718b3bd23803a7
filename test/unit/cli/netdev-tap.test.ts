/** `-netdev tap`: the options usernet takes, and what it refuses. */
import { describe, expect, it } from "vitest";
import { NetdevList } from "../../../src/cli/netdev.js";
import { isInterfaceName, netnsPath } from "../../../src/cli/netdev-tap.js";
import { UsageError } from "../../../src/cli/usage-error.js";

const tap = (s: string) => new NetdevList().add("-netdev", `tap,${s}`);
const error = (s: string) => {
  try {
    tap(s);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  throw new Error("no UsageError");
};

describe("-netdev tap", () => {
  it("takes an interface name, a namespace and a user namespace", () => {
    expect(tap("id=t0,ifname=tap0")).toEqual({ type: "tap", id: "t0", hub: 0, ifname: "tap0" });
    expect(tap("id=t0,hubid=2,ifname=ug0,netns=ns1,script=no,downscript=no,vnet_hdr=off")).toEqual({
      type: "tap",
      id: "t0",
      hub: 2,
      ifname: "ug0",
      netns: "/run/netns/ns1",
      offloads: false,
    });
    expect(tap("id=t0,vnet_hdr=on")).toEqual({ type: "tap", id: "t0", hub: 0, ifname: "" });
    expect(tap("id=t0,netns=/proc/42/ns/net,userns=/proc/42/ns/user")).toEqual({
      type: "tap",
      id: "t0",
      hub: 0,
      ifname: "",
      netns: "/proc/42/ns/net",
      userns: "/proc/42/ns/user",
    });
    expect(new NetdevList().add("-net", "tap,vlan=1")).toMatchObject({ id: "tap.0", hub: 1, ifname: "" });
  });

  it("refuses what it cannot do, naming the option", () => {
    expect(error("id=t0,ifname=a/b")).toBe(
      "-netdev tap: ifname=a/b: expected an interface name of 1..15 bytes such as ifname=tap0",
    );
    expect(error("id=t0,ifname=0123456789abcdef")).toMatch(/^-netdev tap: ifname=0123456789abcdef: /);
    expect(error("id=t0,userns=/proc/1/ns/user")).toBe("-netdev tap: userns= needs netns=");
    expect(error("id=t0,netns=/x,userns=rel")).toMatch(/^-netdev tap: userns=rel: expected/);
    expect(error("id=t0,netns=..")).toMatch(/^-netdev tap: netns=\.\.: expected/);
    expect(error("id=t0,vnet_hdr=maybe")).toMatch(/^-netdev tap: vnet_hdr=maybe: expected on or off/);
    expect(error("id=t0,downscript=/etc/qemu-ifdown")).toMatch(
      /^-netdev tap: downscript=\/etc\/qemu-ifdown: /,
    );
    expect(error("id=t0,queues=4")).toBe(
      "-netdev tap: queues=4: not supported: multi-queue TAPs are not supported",
    );
    expect(error("id=t0,br=br0")).toMatch(/^-netdev tap: br=br0: not supported/);
  });

  it("checks names as Linux does", () => {
    expect(isInterfaceName("tap0")).toBe(true);
    expect(isInterfaceName("x".repeat(15))).toBe(true);
    for (const bad of ["", ".", "..", "a b", "a:b", "a/b", "x".repeat(16), "a\nb"])
      expect(isInterfaceName(bad)).toBe(false);
    expect(netnsPath("/var/run/netns/a")).toBe("/var/run/netns/a");
    expect(netnsPath("a")).toBe("/run/netns/a");
    expect(netnsPath("")).toBeUndefined();
    expect(netnsPath("a b")).toBeUndefined();
  });
});
