import { describe, expect, it } from "vitest";
import { checkBindConflicts } from "../../../src/cli/binds.js";
import { type Frontend, NetdevList } from "../../../src/cli/netdev.js";
import { UsageError } from "../../../src/cli/usage-error.js";

const check = (...opts: [Frontend, string][]): string => {
  const list = new NetdevList();
  for (const [f, v] of opts) list.add(f, v);
  try {
    checkBindConflicts(list.entries);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "ok";
};

describe("checkBindConflicts", () => {
  it("allows distinct sockets, any-port forwards, different protocols and multicast members", () => {
    expect(
      check(
        [
          "-netdev",
          "user,id=a,hostfwd=tcp::0-:22,hostfwd=tcp::0-:23,hostfwd=udp::2222-:22,hostfwd=tcp::2222-:22",
        ],
        ["-netdev", "socket,id=s1,listen=127.0.0.1:8010"],
        ["-netdev", "socket,id=s2,listen=127.0.0.2:8010"],
        ["-netdev", "socket,id=m1,mcast=230.0.0.1:1234"],
        ["-netdev", "socket,id=m2,mcast=230.0.0.1:1234"],
        ["-netdev", "socket,id=c1,connect=127.0.0.1:8010"],
        ["-netdev", "stream,id=u1,server=on,addr.type=unix,addr.path=/tmp/a"],
        ["-netdev", "stream,id=u2,server=off,addr.type=unix,addr.path=/tmp/a"],
        [
          "-netdev",
          "dgram,id=d1,local.type=inet,local.host=127.0.0.1,local.port=8010,remote.type=inet,remote.host=127.0.0.1,remote.port=9",
        ],
      ),
    ).toBe("ok");
  });

  it.each<[[Frontend, string][], string]>([
    [
      [["-netdev", "user,id=n0,hostfwd=tcp::2225-:22,hostfwd=tcp::2225-:23"]],
      "-netdev user,id=n0 hostfwd=tcp::2225-:23: tcp *:2225 is already taken by -netdev user,id=n0 hostfwd=tcp::2225-:22",
    ],
    [
      [
        ["-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:2225-:22"],
        ["-netdev", "user,id=n1,net=10.0.3.0/24,hostfwd=tcp::2225-:22"],
      ],
      "-netdev user,id=n1 hostfwd=tcp::2225-:22: tcp *:2225 is already taken by -netdev user,id=n0 hostfwd=tcp:127.0.0.1:2225-:22",
    ],
    [
      [
        ["-netdev", "socket,id=s0,listen=127.0.0.1:8010"],
        ["-netdev", "stream,id=st0,server=on,addr.type=inet,addr.host=,addr.port=8010"],
      ],
      "-netdev stream,id=st0: tcp 0.0.0.0:8010 is already taken by -netdev socket,id=s0",
    ],
    [
      [
        ["-netdev", "socket,id=s0,udp=127.0.0.1:9,localaddr=:8011"],
        [
          "-netdev",
          "dgram,id=d0,local.type=inet,local.host=127.0.0.1,local.port=8011,remote.type=inet,remote.host=127.0.0.1,remote.port=9",
        ],
      ],
      "-netdev dgram,id=d0: udp 127.0.0.1:8011 is already taken by -netdev socket,id=s0",
    ],
    [
      [
        ["-netdev", "user,id=n0,hostfwd=udp::8011-:53"],
        ["-netdev", "socket,id=s0,udp=127.0.0.1:9,localaddr=127.0.0.1:8011"],
      ],
      "-netdev socket,id=s0: udp 127.0.0.1:8011 is already taken by -netdev user,id=n0 hostfwd=udp::8011-:53",
    ],
    [
      [
        ["-netdev", "stream,id=u1,server=on,addr.type=unix,addr.path=/tmp/a"],
        ["-netdev", "stream,id=u2,server=on,addr.type=unix,addr.path=/tmp/a"],
      ],
      "-netdev stream,id=u2: unix socket /tmp/a is already taken by -netdev stream,id=u1",
    ],
  ])("%j → %s", (opts, message) => {
    expect(check(...opts)).toBe(message);
  });

  it("names -redir forwards by their own spelling", () => {
    const list = new NetdevList();
    const user = list.add("-netdev", "user,id=n0,hostfwd=tcp::2222-:22");
    if (user.type !== "user") throw new Error("not user");
    const redir = { proto: "tcp" as const, hostAddr: "", hostPort: 2222, guestAddr: "", guestPort: 23 };
    user.hostfwd.push(redir);
    expect(() => checkBindConflicts(list.entries, new Map([[redir, "-redir tcp:2222::23"]]))).toThrow(
      new UsageError(
        "-redir tcp:2222::23: tcp *:2222 is already taken by -netdev user,id=n0 hostfwd=tcp::2222-:22",
      ),
    );
  });
});

describe("checkBindConflicts: VDE", () => {
  it("refuses two VDE switches on one directory, and a unix listener on its ctl; joins are no binds", () => {
    expect(check(["-netdev", "vde,id=v0,listen=/tmp/sw"], ["-netdev", "vde,id=v1,listen=/tmp/sw/"])).toMatch(
      /v1.*\/tmp\/sw\/ctl.*v0|v0.*\/tmp\/sw\/ctl/,
    );
    expect(
      check(
        ["-netdev", "vde,id=v0,listen=/tmp/sw"],
        ["-netdev", "stream,id=u1,server=on,addr.type=unix,addr.path=/tmp/sw/ctl"],
      ),
    ).not.toBe("ok");
    expect(check(["-netdev", "vde,id=v0,sock=/tmp/sw"], ["-netdev", "vde,id=v1,sock=/tmp/sw"])).toBe("ok");
  });
});
