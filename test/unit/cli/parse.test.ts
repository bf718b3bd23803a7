import { readFileSync } from "node:fs";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { defaultNetdevs } from "../../../src/cli/defaults.js";
import { defaultUserIpv6, defaultUserNetdev } from "../../../src/cli/netdev-user.js";
import { parseCommandLine } from "../../../src/cli/parse.js";
import { usageText } from "../../../src/cli/usage.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { Config, UserNetdevConfig } from "../../../src/config.js";

const env = { XDG_RUNTIME_DIR: "/run/user/1000" };
const noFiles = (p: string): string => {
  throw new Error(`ENOENT: no such file or directory, open '${p}'`);
};
const files =
  (tree: Record<string, string>) =>
  (p: string): string => {
    const t = tree[p];
    if (t === undefined) return noFiles(p);
    return t;
  };

const run = (argv: string[], readFile = noFiles): Config => {
  const r = parseCommandLine(argv, env, readFile);
  if (r.action !== "run") throw new Error(`not run: ${r.action}`);
  return r.config;
};
const error = (argv: string[], readFile = noFiles): string => {
  try {
    parseCommandLine(argv, env, readFile);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "no error";
};
const defaults = defaultNetdevs(env, process.getuid?.() ?? 0).map((e) => e.config);
const user = (id: string, changes: Partial<UserNetdevConfig> = {}, hub = 0): UserNetdevConfig => ({
  ...defaultUserNetdev(id, hub),
  ipv6: defaultUserIpv6(),
  ...changes,
});
const fwd = (hostPort: number, guestPort: number, proto: "tcp" | "udp" = "tcp", guestAddr = "") => ({
  proto,
  hostAddr: "",
  hostPort,
  guestAddr,
  guestPort,
});

describe("parseCommandLine: valid command lines", () => {
  it("runs hub 0's defaults without netdev options", () => {
    expect(run([])).toEqual({
      logLevel: "info",
      netdevs: [
        user("user0"),
        {
          type: "stream",
          id: "unix0",
          hub: 0,
          server: true,
          addr: { type: "unix", path: "/run/user/1000/usernet/hub0.sock" },
          reconnect: 0,
        },
      ],
      api: { socket: "/run/user/1000/usernet/api.sock" },
    });
  });

  it("puts the default unix socket under the tmpdir of the given environment", () => {
    const r = parseCommandLine([], { TMPDIR: "/scratch" }, noFiles);
    expect(r.action === "run" && r.config.netdevs[1]).toMatchObject({
      addr: { type: "unix", path: `/scratch/usernet-${process.getuid?.() ?? 0}/hub0.sock` },
    });
  });

  it.each<[string[], Config]>([
    [
      [
        "-netdev",
        "user,id=n0,net=10.0.2.0/24,dhcpstart=10.0.2.15",
        "-netdev",
        "socket,id=s0,listen=127.0.0.1:8010",
      ],
      {
        logLevel: "info",
        netdevs: [
          user("n0"),
          { type: "socket", id: "s0", hub: 0, mode: "listen", addr: { host: "127.0.0.1", port: 8010 } },
        ],
      },
    ],
    [
      [
        "--netdev",
        "user,id=n0",
        "--netdev=socket,id=s0,listen=:8010",
        "-netdev=stream,id=st,addr.type=unix,addr.path=/x,server=on",
      ],
      {
        logLevel: "info",
        netdevs: [
          user("n0"),
          { type: "socket", id: "s0", hub: 0, mode: "listen", addr: { host: "0.0.0.0", port: 8010 } },
          {
            type: "stream",
            id: "st",
            hub: 0,
            server: true,
            addr: { type: "unix", path: "/x" },
            reconnect: 0,
          },
        ],
      },
    ],
    [
      [
        "-net",
        "user,vlan=1,hostfwd=tcp::8080-:80",
        "-net",
        "socket,vlan=1,listen=:8011",
        "-net",
        "user,name=lan2,vlan=2,net=10.0.3.0/24",
      ],
      {
        logLevel: "info",
        netdevs: [
          user("user.0", { hostfwd: [fwd(8080, 80)] }, 1),
          { type: "socket", id: "socket.0", hub: 1, mode: "listen", addr: { host: "0.0.0.0", port: 8011 } },
          user(
            "lan2",
            {
              net: "10.0.3.0",
              host: "10.0.3.2",
              dns: "10.0.3.3",
              dhcpStart: "10.0.3.15",
              smbServer: "10.0.3.4",
            },
            2,
          ),
        ],
      },
    ],
    // -redir alone lands on the default user netdev
    [
      ["-redir", "tcp:2222::22", "--redir", "udp:5353:10.0.2.15:53"],
      {
        logLevel: "info",
        netdevs: [
          user("user0", { hostfwd: [fwd(2222, 22), fwd(5353, 53, "udp", "10.0.2.15")] }),
          ...defaults.slice(1),
        ],
        api: { socket: "/run/user/1000/usernet/api.sock" },
      },
    ],
    // ... on the first user netdev of hub 0, after its own forwards
    [
      [
        "-redir",
        "tcp:2222::22",
        "-netdev",
        "user,id=a,hubid=1",
        "-netdev",
        "user,id=b,hostfwd=tcp::80-:80",
        "-netdev",
        "user,id=c,net=10.9.0.0/24",
      ],
      {
        logLevel: "info",
        netdevs: [
          user("a", {}, 1),
          user("b", { hostfwd: [fwd(80, 80), fwd(2222, 22)] }),
          user("c", {
            net: "10.9.0.0",
            host: "10.9.0.2",
            dns: "10.9.0.3",
            dhcpStart: "10.9.0.15",
            smbServer: "10.9.0.4",
          }),
        ],
      },
    ],
    // ... or on one made for it, as old QEMU did
    [
      ["-netdev", "user,id=a,hubid=1", "-netdev", "socket,id=s,listen=:8010", "-redir", "tcp:2222::22"],
      {
        logLevel: "info",
        netdevs: [
          user("a", {}, 1),
          { type: "socket", id: "s", hub: 0, mode: "listen", addr: { host: "0.0.0.0", port: 8010 } },
          user("user.1", { hostfwd: [fwd(2222, 22)] }),
        ],
      },
    ],
    [
      [
        "--state-dir",
        "/var/lib/usernet",
        "--log-level",
        "debug",
        "-netdev",
        "user,id=n0",
        "--log-level=warn",
        "-state-dir=/srv/u",
      ],
      { logLevel: "warn", stateDir: "/srv/u", netdevs: [user("n0")] },
    ],
  ])("%j", (argv, config) => {
    expect(run(argv)).toEqual(config);
  });

  it("--log-format text|json", () => {
    expect(run(["--log-format", "json", "-netdev", "user,id=n0"]).logFormat).toBe("json");
    expect(run(["--log-format=text", "-netdev", "user,id=n0"]).logFormat).toBe("text");
    expect(run(["-netdev", "user,id=n0"]).logFormat).toBeUndefined();
    expect(error(["--log-format", "yaml"])).toBe(
      "--log-format yaml: expected text or json such as --log-format json",
    );
  });

  it("--sandbox asks for confinement and takes no value", () => {
    expect(run(["--sandbox", "-netdev", "user,id=n0"]).sandbox).toBe(true);
    expect(run(["-sandbox", "-netdev", "user,id=n0"]).sandbox).toBe(true);
    expect(run(["-netdev", "user,id=n0"]).sandbox).toBeUndefined();
    expect(error(["--sandbox=on"])).toBe("--sandbox=on: --sandbox takes no value");
  });

  it("names the user netdev made for -redir like QEMU, skipping taken names", () => {
    const c = run([
      "-netdev",
      "user,id=a,hubid=1",
      "-netdev",
      "user,id=user.2,hubid=1,net=10.1.0.0/24",
      "-redir",
      "tcp:1::2",
    ]);
    expect(c.netdevs.map((n) => [n.id, n.hub])).toEqual([
      ["a", 1],
      ["user.2", 1],
      ["user.3", 0],
    ]);
  });

  it("escapes commas QEMU's way", () => {
    expect(run(["-netdev", "user,id=n0,hostname=a,,b,tftp=/srv/x,,,,y,bootfile=f"])).toEqual({
      logLevel: "info",
      netdevs: [user("n0", { hostname: "a,b", tftp: "/srv/x,,y", bootfile: "f" })],
    });
  });

  it("reads --config files in place, combined with argv", () => {
    const readFile = files({
      "/etc/usernet.conf": `
        # lab network
        -netdev user,id=lab,tftp="/srv/my tftp",bootfile=pxelinux.0
        -netdev socket,id=s0,listen=127.0.0.1:8010   # QEMU guests
        --log-level debug
      `,
    });
    expect(
      run(["-redir", "tcp:2222::22", "--config", "/etc/usernet.conf", "--log-level", "error"], readFile),
    ).toEqual({
      logLevel: "error",
      netdevs: [
        user("lab", { tftp: "/srv/my tftp", bootfile: "pxelinux.0", hostfwd: [fwd(2222, 22)] }),
        { type: "socket", id: "s0", hub: 0, mode: "listen", addr: { host: "127.0.0.1", port: 8010 } },
      ],
    });
    expect(run(["--config=/c"], files({ "/c": "" }))).toEqual(run([]));
  });
});

describe("parseCommandLine: help and version", () => {
  const version = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")).version;
  it.each([
    ["-h"],
    ["--help"],
    ["-help"],
    ["-netdev", "user,id=n0", "-h"],
    ["--bogus", "-h"],
    ["-netdev", "nonsense", "--help"],
  ])("%j prints help", (...argv) => {
    expect(parseCommandLine(argv, env, noFiles)).toEqual({ action: "help", text: usageText });
  });
  it.each([["-V"], ["--version"], ["-version"], ["-V", "-h"]])("%j prints the version", (...argv) => {
    expect(parseCommandLine(argv, env, noFiles)).toEqual({ action: "version", text: `usernet ${version}\n` });
  });
  it("finds help inside a config file", () => {
    expect(parseCommandLine(["--config", "/c"], env, files({ "/c": "--help" })).action).toBe("help");
  });

  it("lists every option with a form and an example", () => {
    for (const opt of [
      "-netdev user",
      "-netdev socket",
      "-netdev stream",
      "-netdev dgram",
      "-net TYPE",
      "-redir",
      "--config",
      "--state-dir",
      "--log-level",
      "--help",
      "--version",
    ]) {
      expect(usageText).toContain(opt);
    }
    for (const key of [
      "net=",
      "host=",
      "dhcpstart=",
      "dhcpcount=",
      "dns=",
      "dnssearch=",
      "domainname=",
      "hostname=",
      "restrict=",
      "tftp=",
      "tftp-server-name=",
      "bootfile=",
      "smb=",
      "smbserver=",
      "hostfwd=",
      "guestfwd=",
      "ipv4=",
      "ipv6=",
      "dns-upstream=",
      "host-loopback=",
      "outbound-addr=",
      "mtu=",
      "hubid=",
      "vlan=",
      "listen=",
      "connect=",
      "mcast=",
      "udp=",
      "localaddr=",
      "server=",
      "addr.type=",
      "addr.host=",
      "addr.port=",
      "addr.path=",
      "reconnect=",
      "local.type=",
      "remote.host=",
    ]) {
      expect(usageText).toContain(key);
    }
    expect(usageText.match(/ e\.g\. /g)?.length).toBeGreaterThanOrEqual(9);
  });
});

describe("parseCommandLine: errors", () => {
  it.each<[string[], string]>([
    [["--bogus"], 'unknown option "--bogus" (see usernet --help)'],
    [["--api-sock", "/x"], 'unknown option "--api-sock" (see usernet --help)'],
    [["user,id=n0"], 'unexpected argument "user,id=n0": options start with - (see usernet --help)'],
    [["-"], 'unexpected argument "-": options start with - (see usernet --help)'],
    [["-netdev"], "-netdev: missing value: expected -netdev TYPE,id=ID,... such as -netdev user,id=n0"],
    [["-net"], "-net: missing value: expected -net TYPE,... such as -net user,vlan=0"],
    [
      ["-redir"],
      "-redir: missing value: expected -redir [tcp|udp]:hostport:[guestaddr]:guestport such as -redir tcp:2222::22 or -redir tcp:2222:[fec0::15]:22",
    ],
    [["--config"], "--config: missing value: expected --config FILE such as --config /etc/usernet.conf"],
    [
      ["--state-dir"],
      "--state-dir: missing value: expected --state-dir DIR such as --state-dir /var/lib/usernet",
    ],
    [["--state-dir", ""], "--state-dir : expected a directory"],
    [
      ["--log-level", "loud"],
      "--log-level loud: expected debug, info, warn or error such as --log-level debug",
    ],
    [["--help=x"], "--help=x: help takes no value"],
    [
      ["-device", "virtio-net-pci,netdev=n0"],
      "-device: is a QEMU guest option; it belongs on the QEMU command line, not usernet's",
    ],
    [["-nic", "user"], "-nic: is a QEMU guest option; it belongs on the QEMU command line, not usernet's"],
    [
      ["-net", "nic", "-net", "user"],
      "-net nic: is a QEMU guest option; it belongs on the QEMU command line, not usernet's",
    ],
    [
      ["-netdev", "user,id=n0,net=10.0.2.0/33"],
      "-netdev user: net=10.0.2.0/33: expected ADDR[/PREFIX] such as net=10.0.2.0/24",
    ],
    [
      ["-redir", "x"],
      "-redir x: missing ':' after the protocol; expected [tcp|udp]:hostport:[guestaddr]:guestport such as -redir tcp:2222::22 or -redir tcp:2222:[fec0::15]:22",
    ],
    [
      ["-redir", "tcp:2222:10.0.3.4:22"],
      "-redir tcp:2222:10.0.3.4:22: guest address 10.0.3.4 not inside net=10.0.2.0/24",
    ],
    [
      ["-netdev", "user,id=n0,hostfwd=tcp::2222-:22", "-redir", "tcp:2222::23"],
      "-redir tcp:2222::23: tcp *:2222 is already taken by -netdev user,id=n0 hostfwd=tcp::2222-:22",
    ],
    [
      ["-netdev", "user,id=a", "-netdev", "user,id=a"],
      "-netdev user,id=a: id a is already used by -netdev user,id=a",
    ],
  ])("%j → %s", (argv, message) => {
    expect(error(argv)).toBe(message);
  });

  it("reports config file problems with the file's name", () => {
    expect(error(["--config", "/nope"])).toBe(
      "--config /nope: cannot read: ENOENT: no such file or directory, open '/nope'",
    );
    expect(error(["--config", "/a"], files({ "/a": "--config /b" }))).toBe(
      "--config /a: --config /b: config files cannot include others",
    );
    expect(error(["--config", "/a"], files({ "/a": '-netdev "user,id=n0' }))).toBe(
      '--config /a: line 1: unterminated " quote',
    );
    expect(error(["--config", "/a"], files({ "/a": "-netdev user,id=n0,mtu=9" }))).toBe(
      "-netdev user: mtu=9: expected 68..65520 such as mtu=65520",
    );
  });

  it("keeps every message on one line", () => {
    expect(error(["-netdev", "user,id=n0,hostname=a\nb"])).toBe(
      "-netdev user: hostname=a\\x0ab: expected 1 to 255 printable characters such as hostname=guest",
    );
  });
});

describe("parseCommandLine: anything typed", () => {
  const fragment = fc.oneof(
    fc.string(),
    fc.constantFrom(
      "-netdev",
      "--netdev",
      "-net",
      "-redir",
      "--config",
      "--state-dir",
      "--log-level",
      "-h",
      "-V",
      "-device",
      "user",
      "socket",
      "stream",
      "dgram",
      "tap",
      "nic",
      "id=n0",
      "id=n1",
      "hubid=1",
      "vlan=1",
      "name=x",
      "net=10.0.2.0/24",
      "net=10.0.0.0/8",
      "host=10.0.2.2",
      "dhcpstart=10.0.2.15",
      "dhcpcount=300",
      "dns=10.0.2.3",
      "hostfwd=tcp::2222-:22",
      "hostfwd=udp:127.0.0.1:0-10.0.2.15:53",
      "guestfwd=tcp::80-cmd:cat",
      "guestfwd=tcp:10.0.2.100:1-tcp:127.0.0.1:2",
      "restrict",
      "norestrict",
      "smb=/x",
      "mtu=9000",
      "listen=:8010",
      "connect=127.0.0.1:8010",
      "mcast=230.0.0.1:1",
      "udp=127.0.0.1:1",
      "localaddr=:2",
      "server=on",
      "addr.type=inet",
      "addr.type=unix",
      "addr.host=127.0.0.1",
      "addr.port=8010",
      "addr.path=/s",
      "reconnect=1",
      "local.type=inet",
      "local.host=127.0.0.1",
      "local.port=1",
      "remote.type=inet",
      "remote.host=230.0.0.1",
      "remote.host=127.0.0.1",
      "remote.port=2",
      "tcp:2222::22",
      ",",
      ",,",
      "=",
      ":",
    ),
  );
  // options assembled from fragments reach deep into the validators; raw strings the edges
  const optionString = fc.array(fragment, { maxLength: 8 }).map((parts) => parts.join(","));
  const argv = fc.array(fc.oneof(fragment, optionString), { maxLength: 10 });
  const fileText = fc
    .array(fc.oneof(fragment, optionString, fc.constantFrom('"', "'", "#", "\n", " ")), { maxLength: 10 })
    .map((p) => p.join(" "));

  test.prop([argv, fc.option(fileText, { nil: undefined })], { numRuns: 2000 })(
    "either parses or throws a one-line UsageError",
    (args, text) => {
      const readFile = (p: string) => {
        if (text === undefined) throw new Error(`ENOENT: ${p}`);
        return text;
      };
      try {
        const r = parseCommandLine(args, env, readFile);
        if (r.action === "run") expect(r.config.netdevs.length).toBeGreaterThan(0);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        expect((e as UsageError).message).not.toMatch(/[\n\r]/);
      }
    },
  );
});
