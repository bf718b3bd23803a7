import { describe, expect, it } from "vitest";
import { defaultNetdevs, defaultUnixSocketPath } from "../../../src/cli/defaults.js";
import { defaultUserIpv6, defaultUserNetdev } from "../../../src/cli/netdev-user.js";
import { UsageError } from "../../../src/cli/usage-error.js";

describe("defaults", () => {
  it("puts the unix socket under XDG_RUNTIME_DIR", () => {
    expect(defaultUnixSocketPath({ XDG_RUNTIME_DIR: "/run/user/1000" }, 1000)).toBe(
      "/run/user/1000/usernet/hub0.sock",
    );
    expect(defaultUnixSocketPath({ XDG_RUNTIME_DIR: "/run/user/1000/" }, 1000)).toBe(
      "/run/user/1000/usernet/hub0.sock",
    );
  });

  it("falls back to os.tmpdir()'s rule and the uid", () => {
    expect(defaultUnixSocketPath({}, 1000)).toBe("/tmp/usernet-1000/hub0.sock");
    expect(defaultUnixSocketPath({ XDG_RUNTIME_DIR: "" }, 0)).toBe("/tmp/usernet-0/hub0.sock");
    expect(defaultUnixSocketPath({ TMPDIR: "/var/tmp/" }, 5)).toBe("/var/tmp/usernet-5/hub0.sock");
    expect(defaultUnixSocketPath({ TMP: "/t1", TEMP: "/t2" }, 5)).toBe("/t1/usernet-5/hub0.sock");
    expect(defaultUnixSocketPath({ TEMP: "/t2" }, 5)).toBe("/t2/usernet-5/hub0.sock");
  });

  it("is hub 0 with user0 and unix0, no TCP listener", () => {
    expect(defaultNetdevs({ XDG_RUNTIME_DIR: "/run/user/7" }, 7).map((e) => e.config)).toEqual([
      { ...defaultUserNetdev("user0", 0), ipv6: defaultUserIpv6() },
      {
        type: "stream",
        id: "unix0",
        hub: 0,
        server: true,
        addr: { type: "unix", path: "/run/user/7/usernet/hub0.sock" },
        reconnect: 0,
      },
    ]);
  });

  it("refuses a default socket path the kernel cannot bind", () => {
    const long = `/${"x".repeat(100)}`;
    expect(() => defaultNetdevs({ XDG_RUNTIME_DIR: long }, 1)).toThrow(
      new UsageError(
        `default unix socket path ${long}/usernet/hub0.sock is longer than 107 bytes; set a shorter XDG_RUNTIME_DIR or give -netdev options`,
      ),
    );
  });
});
