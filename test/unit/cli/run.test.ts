import { describe, expect, it, vi } from "vitest";
import { type CliEnvironment, runCli } from "../../../src/cli/run.js";
import type { RuntimeDirFs } from "../../../src/cli/runtime-dir.js";
import { usageText } from "../../../src/cli/usage.js";
import type { Config } from "../../../src/config.js";

type Entry = { kind: "dir" | "symlink"; uid: number; mode: number };

/** a file system of directories and symlinks, for the runtime directory checks */
function fakeFs(entries: Record<string, Entry>): RuntimeDirFs & { made: string[] } {
  const made: string[] = [];
  return {
    made,
    lstat(path) {
      const e = entries[path];
      if (!e) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
      return {
        isDirectory: () => e.kind === "dir",
        isSymbolicLink: () => e.kind === "symlink",
        uid: e.uid,
        mode: e.mode,
      };
    },
    mkdir(path, mode) {
      if (entries[path]) throw Object.assign(new Error("EEXIST"), { code: "EEXIST" });
      entries[path] = { kind: "dir", uid: 1, mode };
      made.push(path);
    },
    chmod(path, mode) {
      const e = entries[path];
      if (e) e.mode = mode;
    },
  };
}

interface Fake {
  io: CliEnvironment;
  out: string[];
  err: string[];
  signal(name: string): void;
  started: Config[];
  unsubscribed: () => boolean;
}

function fake(
  argv: string[],
  start?: CliEnvironment["start"],
  fs: RuntimeDirFs = fakeFs({ "/run/user/1": { kind: "dir", uid: 1, mode: 0o700 } }),
  env: NodeJS.ProcessEnv = { XDG_RUNTIME_DIR: "/run/user/1" },
): Fake {
  const out: string[] = [];
  const err: string[] = [];
  const started: Config[] = [];
  let handler: ((s: string) => void) | undefined;
  let unsubscribed = false;
  const io: CliEnvironment = {
    argv,
    env,
    uid: 1,
    runtimeDirFs: fs,
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    readFile: () => {
      throw new Error("no files");
    },
    start:
      start ??
      (async (config) => {
        started.push(config);
        return { close: async () => {} };
      }),
    onSignal(h) {
      handler = h;
      return () => {
        unsubscribed = true;
      };
    },
  };
  return {
    io,
    out,
    err,
    started,
    signal: (name) => handler?.(name),
    unsubscribed: () => unsubscribed,
  };
}

/** lets pending promise callbacks run */
const settle = () => new Promise((r) => setTimeout(r, 0));

describe("runCli", () => {
  it("--sandbox confines after start-up, before the attach lines; a failure closes and exits 1", async () => {
    const calls: string[] = [];
    const f = fake(["--sandbox", "-netdev", "user,id=n0"], async (config) => {
      calls.push(`start sandbox=${config.sandbox}`);
      return { close: async () => void calls.push("close") };
    });
    // never the real one: it would confine the test runner
    f.io.confine = (_config, want, _log, runtimeDir) => {
      calls.push(`confine ${JSON.stringify(want)} ${runtimeDir}`);
    };
    const done = runCli(f.io);
    await settle();
    expect(calls).toEqual([
      "start sandbox=true",
      'confine {"seccomp":true,"landlock":true} /run/user/1/usernet',
    ]);
    f.signal("SIGTERM");
    expect(await done).toBe(0);

    const g = fake(["--sandbox", "-netdev", "user,id=n0"], async () => ({
      close: async () => void calls.push("closed after failure"),
    }));
    g.io.confine = () => {
      throw new Error("sandbox: no_new_privs on, seccomp FAILED (EINVAL)");
    };
    expect(await runCli(g.io)).toBe(1);
    expect(calls).toContain("closed after failure");
    expect(g.err.join("")).toMatch(/start-up failed: sandbox: .*seccomp FAILED/);
    expect(g.out).toEqual([]);

    const h = fake(["-netdev", "user,id=n0"]);
    h.io.confine = () => {
      calls.push("confined without --sandbox");
    };
    const d3 = runCli(h.io);
    await settle();
    h.signal("SIGINT");
    expect(await d3).toBe(0);
    expect(calls).not.toContain("confined without --sandbox");
  });

  it("prints help and the version to stdout", async () => {
    const h = fake(["--help"]);
    expect(await runCli(h.io)).toBe(0);
    expect(h.out.join("")).toBe(usageText);
    const v = fake(["-V"]);
    expect(await runCli(v.io)).toBe(0);
    expect(v.out.join("")).toMatch(/^usernet \d+\.\d+\.\d+\n$/);
    expect(h.err.concat(v.err)).toEqual([]);
  });

  it("prints a usage error as one line on stderr and exits 2 without starting", async () => {
    const f = fake(["-netdev", "user,id=n0,net=10.0.2.0/33"]);
    expect(await runCli(f.io)).toBe(2);
    expect(f.err).toEqual([
      "usernet: -netdev user: net=10.0.2.0/33: expected ADDR[/PREFIX] such as net=10.0.2.0/24\n",
    ]);
    expect(f.out).toEqual([]);
    expect(f.started).toEqual([]);
  });

  it("starts, prints the attach lines, and closes cleanly on a signal", async () => {
    const close = vi.fn(async () => {});
    const f = fake(
      ["-netdev", "user,id=n0", "-netdev", "socket,id=s0,listen=127.0.0.1:9000"],
      async (config) => {
        f.started.push(config);
        return { close };
      },
    );
    const done = runCli(f.io);
    await settle();
    expect(f.started).toHaveLength(1);
    expect(f.out.join("")).toBe(
      "# attach a QEMU guest with one of:\n" +
        "qemu-system-x86_64 ... -netdev stream,id=net0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=9000 -device virtio-net-pci,netdev=net0  # hub 0 via s0\n" +
        "qemu-system-x86_64 ... -netdev socket,id=net0,connect=127.0.0.1:9000 -device virtio-net-pci,netdev=net0  # hub 0 via s0\n",
    );
    expect(close).not.toHaveBeenCalled();
    f.signal("SIGTERM");
    expect(await done).toBe(0);
    expect(close).toHaveBeenCalledTimes(1);
    expect(f.err).toEqual(["usernet info: SIGTERM: closing\n"]);
    expect(f.unsubscribed()).toBe(true);
  });

  it("logs at the configured level", async () => {
    const f = fake(["--log-level", "warn"]);
    const done = runCli(f.io);
    await settle();
    f.signal("SIGINT");
    expect(await done).toBe(0);
    expect(f.err).toEqual([]);
    expect(f.started[0]?.logLevel).toBe("warn");
  });

  it("logs a start-up failure as one line and exits 1", async () => {
    const f = fake([], async () => {
      throw new Error("listen EADDRINUSE: address already in use\n    127.0.0.1:8010");
    });
    expect(await runCli(f.io)).toBe(1);
    expect(f.err).toEqual([
      "usernet error: start-up failed: listen EADDRINUSE: address already in use 127.0.0.1:8010\n",
    ]);
    expect(f.out).toEqual([]);
    expect(f.unsubscribed()).toBe(true);
  });

  it("closes right after start-up when stopped while starting", async () => {
    let finish!: (r: { close(): Promise<void> }) => void;
    const close = vi.fn(async () => {});
    const f = fake([], () => new Promise((r) => (finish = r)));
    const done = runCli(f.io);
    await settle();
    f.signal("SIGINT");
    finish({ close });
    expect(await done).toBe(0);
    expect(close).toHaveBeenCalledTimes(1);
  });

  it("exits 1 when closing fails", async () => {
    const f = fake([], async () => ({
      close: async () => {
        throw new Error("stuck");
      },
    }));
    const done = runCli(f.io);
    await settle();
    f.signal("SIGINT");
    expect(await done).toBe(1);
    expect(f.err.at(-1)).toBe("usernet error: close failed: stuck\n");
  });

  it("gives up on a hanging close at the second signal", async () => {
    const f = fake([], async () => ({ close: () => new Promise<void>(() => {}) }));
    const done = runCli(f.io);
    await settle();
    f.signal("SIGINT");
    await settle();
    f.signal("SIGINT");
    expect(await done).toBe(1);
    expect(f.err.at(-1)).toBe("usernet error: second signal while closing; exiting without a clean close\n");
  });

  it("gives up on a hanging start-up at the second signal", async () => {
    const f = fake([], () => new Promise(() => {}));
    const done = runCli(f.io);
    await settle();
    f.signal("SIGINT");
    f.signal("SIGINT");
    expect(await done).toBe(1);
    expect(f.err.at(-1)).toBe("usernet error: stopped twice during start-up; exiting without closing\n");
  });

  it("creates the private runtime directory before starting on the defaults", async () => {
    const fs = fakeFs({ "/run/user/1": { kind: "dir", uid: 1, mode: 0o700 } });
    const f = fake([], undefined, fs);
    const done = runCli(f.io);
    await settle();
    expect(fs.made).toEqual(["/run/user/1/usernet"]);
    expect(f.started[0]?.api).toEqual({ socket: "/run/user/1/usernet/api.sock" });
    f.signal("SIGTERM");
    expect(await done).toBe(0);
  });

  it("falls back to /tmp/usernet-UID, with a warning, when XDG_RUNTIME_DIR is not ours", async () => {
    const fs = fakeFs({ "/run/user/1": { kind: "dir", uid: 0, mode: 0o700 } });
    const f = fake([], undefined, fs);
    const done = runCli(f.io);
    await settle();
    expect(fs.made).toEqual(["/tmp/usernet-1"]);
    expect(f.err).toEqual([
      "usernet warn: XDG_RUNTIME_DIR=/run/user/1 is owned by uid 0, not by us (uid 1); using /tmp/usernet-1 instead\n",
    ]);
    f.signal("SIGTERM");
    expect(await done).toBe(0);
  });

  it("refuses to start when the runtime directory is someone else's", async () => {
    const fs = fakeFs({ "/tmp/usernet-1": { kind: "dir", uid: 1000, mode: 0o700 } });
    const f = fake([], undefined, fs, {});
    expect(await runCli(f.io)).toBe(1);
    expect(f.started).toEqual([]);
    expect(f.err).toEqual([
      "usernet error: start-up failed: runtime directory /tmp/usernet-1 is owned by uid 1000, not by us (uid 1); refusing to put usernet's sockets there (remove it, or set XDG_RUNTIME_DIR to a private directory, or give -netdev options)\n",
    ]);
  });

  it("does not touch a runtime directory with explicit netdevs", async () => {
    const fs = fakeFs({});
    const f = fake(["-netdev", "user,id=n0"], undefined, fs, {});
    const done = runCli(f.io);
    await settle();
    expect(fs.made).toEqual([]);
    f.signal("SIGTERM");
    expect(await done).toBe(0);
  });

  it("under systemd: READY=1 after start, RELOADING=1/READY=1 around SIGHUP (which re-reads --config), STOPPING=1", async () => {
    let file = "-netdev user,id=n0\n";
    const sent: string[] = [];
    const reloaded: Config[] = [];
    let hup: (() => void) | undefined;
    const f = fake(["--config", "/u.conf"], async (config) => {
      sent.push(`start ${config.netdevs.length}`);
      return {
        close: async () => void sent.push("close"),
        reload: async (c) => {
          reloaded.push(c);
          return {
            opened: [],
            closed: [],
            forwardsAdded: [],
            forwardsRemoved: [],
            failed: [],
            notLive: [],
            netdevs: c.netdevs,
          };
        },
      };
    });
    f.io.env = { NOTIFY_SOCKET: "/run/notify" };
    f.io.readFile = () => file;
    f.io.notifyIo = {
      open: () => 5,
      send: (_fd, text) => void sent.push(text.split("\n")[0] as string),
      close() {},
    };
    f.io.onReload = (h) => {
      hup = h;
      return () => {
        hup = undefined;
      };
    };
    const done = runCli(f.io);
    await settle();
    expect(sent).toEqual(["start 1", "READY=1"]);
    file = "-netdev user,id=n0\n-netdev socket,id=l0,listen=127.0.0.1:9000\n";
    hup?.();
    await settle();
    expect(reloaded.map((c) => c.netdevs.map((n) => n.id))).toEqual([["n0", "l0"]]);
    expect(sent.slice(2)).toEqual(["RELOADING=1", "READY=1"]);
    file = "-netdev bogus\n";
    hup?.();
    await settle();
    expect(reloaded).toHaveLength(1);
    expect(f.err.join("")).toMatch(/reload: the configuration does not parse, nothing changed: /);
    f.signal("SIGTERM");
    expect(await done).toBe(0);
    expect(sent.slice(4)).toEqual(["RELOADING=1", "READY=1", "STOPPING=1", "close"]);
    expect(hup).toBeUndefined();
  });

  it("hands activated sockets to start, and refuses a broken LISTEN_FDS", async () => {
    let seen: string[] = [];
    const f = fake(["-netdev", "user,id=n0"], async (_config, _log, options) => {
      seen = (options?.activated?.unused() ?? []).map((s) => `${s.name}=${s.fd}`);
      return { close: async () => {} };
    });
    f.io.env = { LISTEN_FDS: "2", LISTEN_PID: "77", LISTEN_FDNAMES: "s0:api" };
    f.io.pid = 77;
    const done = runCli(f.io);
    await settle();
    expect(seen).toEqual(["s0=3", "api=4"]);
    expect(f.io.env).toEqual({});
    f.signal("SIGTERM");
    expect(await done).toBe(0);

    const g = fake(["-netdev", "user,id=n0"]);
    g.io.env = { LISTEN_FDS: "2", LISTEN_PID: "77", LISTEN_FDNAMES: "s0" };
    g.io.pid = 77;
    expect(await runCli(g.io)).toBe(1);
    expect(g.err.join("")).toMatch(/socket activation: LISTEN_FDNAMES names 1 socket\(s\) but LISTEN_FDS=2/);
  });
});
