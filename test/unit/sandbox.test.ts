/**
 * src/sandbox.ts: the Landlock rules a Config turns into, and the one log line.
 * (Applying them for real is test/unit/native/sandbox.test.ts and test/e2e/sandbox.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { defaultUserNetdev } from "../../src/cli/netdev-user.js";
import type { Config, UserNetdevConfig } from "../../src/config.js";
import type { SandboxApplyReport } from "../../src/native/sandbox.js";
import { describeSandbox, sandboxRules } from "../../src/sandbox.js";

const env = { packageRoot: "/opt/usernet", tmpdir: "/tmp", runtimeDir: "/run/user/1/usernet" };
const user = (changes: Partial<UserNetdevConfig> = {}): UserNetdevConfig => ({
  ...defaultUserNetdev("n0", 0),
  ...changes,
});
const config = (netdevs: Config["netdevs"], extra: Partial<Config> = {}): Config => ({
  netdevs,
  logLevel: "info",
  ...extra,
});
const access = (c: Config) => Object.fromEntries(sandboxRules(c, env).map((r) => [r.path, r.access]));

describe("sandboxRules", () => {
  it("a plain network: the system and the package read-only, nothing executable, nothing writable but the runtime dir", () => {
    const a = access(config([user()]));
    expect(a["/usr"]).toBe("r");
    expect(a["/etc"]).toBe("r");
    expect(a["/opt/usernet"]).toBe("r");
    expect(a["/proc/self"]).toBe("r");
    expect(a["/dev/null"]).toBe("rw");
    expect(a["/run/user/1/usernet"]).toBe("rwc");
    expect(a["/tmp"]).toBeUndefined();
    expect(a["/dev/net/tun"]).toBeUndefined();
    const writable = Object.entries(a).filter(([, v]) => /[wcx]/.test(v));
    expect(writable).toEqual([
      ["/dev/null", "rw"],
      ["/run/user/1/usernet", "rwc"],
    ]);
  });

  it("a VDE port's switch directory is read-write: its datagram sockets are made as clients come", () => {
    const a = access(
      config([
        user(),
        { type: "vde", id: "v0", hub: 0, mode: "listen", dir: "/run/user/1/vde.sw" },
        { type: "vde", id: "v1", hub: 0, mode: "join", dir: "/tmp/vde.sw" },
      ]),
    );
    expect(a["/run/user/1/vde.sw"]).toBe("rwc");
    expect(a["/tmp/vde.sw"]).toBe("rwc");
    expect(a["/tmp"]).toBeUndefined();
  });

  it("what the options name: tftp read-only, state read-write, a TAP's /dev/net/tun", () => {
    const a = access(
      config([user({ tftp: "/srv/tftp" }), { type: "tap", id: "t0", hub: 0, ifname: "tap0" }], {
        stateDir: "/var/lib/usernet",
      }),
    );
    expect(a["/srv/tftp"]).toBe("r");
    expect(a["/var/lib/usernet"]).toBe("rwc");
    expect(a["/dev/net/tun"]).toBe("rwi");
    expect(a["/usr"]).toBe("r");
  });

  it("smb= and guestfwd commands start programs later: the system becomes executable", () => {
    const smb = access(config([user({ smb: "/home/u/share" })]));
    expect(smb["/home/u/share"]).toBe("rwc");
    expect(smb["/tmp"]).toBe("rwc"); // smbd's private directory
    expect(smb["/usr"]).toBe("rx");
    const cmd = access(
      config([
        user({
          guestfwd: [
            { proto: "tcp", server: "10.0.2.100", port: 80, target: { kind: "cmd", command: "cat" } },
          ],
        }),
      ]),
    );
    expect(cmd["/usr"]).toBe("rx");
    expect(cmd["/tmp"]).toBeUndefined();
  });

  it("a TAP's downscript runs at exit: the system and the script become executable", () => {
    const tap = access(
      config([
        user(),
        { type: "tap", id: "t0", hub: 0, ifname: "qtap0", downscript: { path: "/opt/net/ifdown" } },
      ]),
    );
    expect(tap["/usr"]).toBe("rx");
    expect(tap["/opt/net/ifdown"]).toBe("rx");
    expect(access(config([user(), { type: "tap", id: "t0", hub: 0, ifname: "" }]))["/usr"]).toBe("r");
  });
});

describe("describeSandbox", () => {
  const rules = sandboxRules(config([user({ tftp: "/srv/tftp" })], { stateDir: "/st" }), env);
  const ok = (codes: Record<string, string> = {}): SandboxApplyReport => ({
    noNewPrivs: true,
    seccomp: { applied: true, denied: 59 },
    landlock: {
      abi: 7,
      applied: true,
      threads: 11,
      rules: rules.map((r) => ({
        path: r.path,
        access: r.access,
        ...(codes[r.path] ? { code: codes[r.path] as string } : {}),
      })),
    },
  });
  const all = { seccomp: true, landlock: true };

  it("says what was applied, on one line", () => {
    const d = describeSandbox(all, ok({ "/lib64": "ENOENT" }), rules);
    expect(d.ok).toBe(true);
    expect(d.line).toBe(
      "sandbox: no_new_privs on, seccomp on (59 syscalls denied, EPERM), landlock ABI 7 on (11 threads): " +
        "system ro, package ro /opt/usernet, tftp ro /srv/tftp, state rw /st, runtime rw /run/user/1/usernet",
    );
  });

  it("names configured paths it could not open", () => {
    const d = describeSandbox(all, ok({ "/srv/tftp": "ENOENT" }), rules);
    expect(d.ok).toBe(true);
    expect(d.line).toMatch(/; not allowed \(cannot open\): tftp \/srv\/tftp \(ENOENT\)$/);
  });

  it("a kernel without Landlock is said, not fatal; a refused filter or an unreached thread is fatal", () => {
    const none = describeSandbox(
      all,
      {
        ...ok(),
        landlock: { abi: 0, applied: false, threads: 0, rules: [], error: "the kernel lacks Landlock" },
      },
      rules,
    );
    expect(none).toEqual({
      ok: true,
      line: "sandbox: no_new_privs on, seccomp on (59 syscalls denied, EPERM), landlock unavailable: the kernel lacks Landlock",
    });
    const seccomp = describeSandbox(
      all,
      {
        ...ok(),
        seccomp: { applied: false, denied: 59, error: "seccomp(SET_MODE_FILTER, TSYNC): Invalid argument" },
      },
      rules,
    );
    expect(seccomp.ok).toBe(false);
    expect(seccomp.line).toMatch(/seccomp FAILED \(seccomp\(SET_MODE_FILTER, TSYNC\): Invalid argument\)/);
    const partial = describeSandbox(
      all,
      {
        ...ok(),
        landlock: {
          abi: 7,
          applied: false,
          partial: true,
          threads: 5,
          rules: [],
          error: "thread 9 did not answer",
        },
      },
      rules,
    );
    expect(partial.ok).toBe(false);
    expect(partial.line).toMatch(
      /landlock ABI 7 FAILED \(thread 9 did not answer; some threads restricted\)/,
    );
  });

  it("the drop-in's flags one at a time", () => {
    const r = ok();
    expect(
      describeSandbox({ seccomp: true, landlock: false }, { noNewPrivs: true, seccomp: r.seccomp }, []).line,
    ).toBe("sandbox: no_new_privs on, seccomp on (59 syscalls denied, EPERM), landlock off");
    expect(
      describeSandbox({ seccomp: false, landlock: true }, { noNewPrivs: true, landlock: r.landlock }, rules)
        .line,
    ).toMatch(/^sandbox: no_new_privs on, seccomp off, landlock ABI 7 on/);
  });
});
