/** `-netdev tap`: the options usernet takes, and what it refuses. */
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { NetdevList } from "../../../src/cli/netdev.js";
import { isInterfaceName, netnsPath } from "../../../src/cli/netdev-tap.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { TapNetdevConfig } from "../../../src/config.js";

const tap = (s: string) => new NetdevList().add("-netdev", `tap,${s}`) as TapNetdevConfig;
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
    expect(tap("id=t0,ifname=tap0,script=no,downscript=")).toEqual({
      type: "tap",
      id: "t0",
      hub: 0,
      ifname: "tap0",
    });
    expect(tap("id=t0,hubid=2,ifname=ug0,netns=ns1,script=no,downscript=no,vnet_hdr=off")).toEqual({
      type: "tap",
      id: "t0",
      hub: 2,
      ifname: "ug0",
      netns: "/run/netns/ns1",
      offloads: false,
    });
    expect(tap("id=t0,vnet_hdr=on,script=no,downscript=no")).toEqual({
      type: "tap",
      id: "t0",
      hub: 0,
      ifname: "",
    });
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

  it("takes QEMU's script=/downscript=, defaulting to /etc/qemu-ifup and -ifdown where they exist", () => {
    expect(tap("id=t0,ifname=tap0")).toEqual({
      type: "tap",
      id: "t0",
      hub: 0,
      ifname: "tap0",
      script: { path: "/etc/qemu-ifup", ifExists: true },
      downscript: { path: "/etc/qemu-ifdown", ifExists: true },
    });
    // the seeds' legacy spelling, verbatim
    expect(new NetdevList().add("-net", "tap,ifname=qtap0,script=/etc/qemu-ifup,downscript=no")).toEqual({
      type: "tap",
      id: "tap.0",
      hub: 0,
      ifname: "qtap0",
      script: { path: "/etc/qemu-ifup" },
    });
    expect(tap("id=t0,script=up.sh,downscript=/x/down").script).toEqual({ path: resolve("up.sh") });
    expect(tap("id=t0,script=up.sh,downscript=/x/down").downscript).toEqual({ path: "/x/down" });
    // the defaults configure usernet's own namespace, where a netns= TAP is not
    expect(tap("id=t0,netns=ns1")).toEqual({
      type: "tap",
      id: "t0",
      hub: 0,
      ifname: "",
      netns: "/run/netns/ns1",
    });
    expect(tap("id=t0,netns=ns1,script=/s").script).toEqual({ path: "/s" });
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
    expect(error("id=t0,downscript=a\0b")).toMatch(/^-netdev tap: downscript=a.x00b: expected a file or no/);
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
