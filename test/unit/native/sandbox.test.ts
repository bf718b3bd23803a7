/**
 * native/sandbox.c, applied for real in a child node process (confinement cannot be
 * undone, so never in the test runner). The child first does each thing once
 * unconfined (the control: it works), then applies no_new_privs, the seccomp filter
 * and a Landlock ruleset, and tries again: what must fail fails, what is allowed
 * still works. Denied syscalls are tried by a python3 child, which inherits the
 * filter: Node has no way to call ptrace or mount itself.
 *
 * libuv's threadpool is started (an async read) before confining, so the async reads
 * after it prove that threads other than the caller were restricted too; a worker
 * thread started afterwards proves new threads inherit the domain.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sandboxAddon, sandboxAddonPath } from "../../../src/native/sandbox.js";

const python = "/usr/bin/python3";
const haveAddon = existsSync(sandboxAddonPath);

// the syscalls a python3 child tries; x86-64 and arm64 numbers for those without a libc wrapper
const pythonProbe = `
import ctypes, os, platform, json
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": {"bpf": 321, "keyctl": 250, "init_module": 175}, "aarch64": {"bpf": 280, "keyctl": 219, "init_module": 105}}[platform.machine()]
def err(r):
    return 0 if r == 0 else ctypes.get_errno()
out = {}
out["ptrace"] = err(libc.ptrace(0, 0, None, None))  # PTRACE_TRACEME
out["mount"] = err(libc.mount(b"none", b"/nonexistent-usernet-test", b"tmpfs", 0, None))
out["bpf"] = err(libc.syscall(nr["bpf"], 0, None, 0))
out["keyctl"] = err(libc.syscall(nr["keyctl"], 0, -1, 0))  # KEYCTL_GET_KEYRING_ID of the thread keyring
out["unshare"] = err(libc.unshare(0x10000000))  # CLONE_NEWUSER
out["init_module"] = err(libc.syscall(nr["init_module"], None, 0, b""))
out["getpid"] = 0 if os.getpid() > 0 else 1
print(json.dumps(out))
`;

// the child: each check before and after confining; prints one JSON line
const child = `
import { createRequire } from "node:module";
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import { Worker } from "node:worker_threads";
const cfg = JSON.parse(process.env.SANDBOX_TEST);
const addon = createRequire(import.meta.url)(cfg.addon);
const code = (f) => { try { f(); return "ok"; } catch (e) { return e.code; } };
const acode = (p) => p.then(() => "ok", (e) => e.code);
const worker = () => new Promise((res) => {
  const w = new Worker("Promise.all([import('node:fs'), import('node:worker_threads')]).then(([fs, wt]) => {" +
    "try { fs.readFileSync(wt.workerData); wt.parentPort.postMessage('ok') } catch (e) { wt.parentPort.postMessage(e.code) } })",
    { eval: true, workerData: cfg.secret });
  w.once("message", (m) => { res(m); w.terminate(); });
  w.once("error", (e) => res(String(e)));
});
const checks = async () => ({
  readSecretSync: code(() => fs.readFileSync(cfg.secret)),
  readSecretAsync: await new Promise((res) => fs.readFile(cfg.secret, (e) => res(e ? e.code : "ok"))),
  readSecretPromise: await acode(fs.promises.readFile(cfg.secret)),
  openSecretDirAsync: await acode(fs.promises.readdir(cfg.secretDir)),
  writeOutsideAsync: await acode(fs.promises.writeFile(cfg.secretDir + "/new", "x")),
  readAllowedAsync: await acode(fs.promises.readFile(cfg.allowed + "/in")),
  writeAllowedAsync: await acode(fs.promises.writeFile(cfg.allowed + "/out", "x")),
  writeReadOnlyAsync: await acode(fs.promises.writeFile(cfg.readOnly + "/out", "x")),
  readReadOnlySync: code(() => fs.readFileSync(cfg.readOnly + "/in")),
  worker: await worker(),
  syscalls: cfg.python ? JSON.parse(spawnSync(cfg.python, ["-c", cfg.probe], { encoding: "utf8" }).stdout || "null") : null,
});
await fs.promises.readFile(cfg.allowed + "/in"); // starts libuv's threadpool
const before = await checks();
const report = addon.apply(cfg.options);
const status = fs.readFileSync("/proc/self/status", "utf8");
// a thread that ends between the listing and the read (a finished worker) is skipped
const threads = fs.readdirSync("/proc/self/task").flatMap((t) => {
  let s;
  try {
    s = fs.readFileSync("/proc/self/task/" + t + "/status", "utf8");
  } catch (e) {
    if (e.code === "ENOENT") return [];
    throw e;
  }
  return [{ nnp: /NoNewPrivs:\\s*(\\d)/.exec(s)[1], seccomp: /Seccomp:\\s*(\\d)/.exec(s)[1] }];
});
const after = await checks();
console.log(JSON.stringify({ before, after, report, noNewPrivs: /NoNewPrivs:\\s*(\\d)/.exec(status)[1], threads }));
`;

interface Checks {
  readSecretSync: string;
  readSecretAsync: string;
  readSecretPromise: string;
  openSecretDirAsync: string;
  writeOutsideAsync: string;
  readAllowedAsync: string;
  writeAllowedAsync: string;
  writeReadOnlyAsync: string;
  readReadOnlySync: string;
  worker: string;
  syscalls: Record<string, number> | null;
}

interface ChildResult {
  before: Checks;
  after: Checks;
  report: {
    noNewPrivs: boolean;
    seccomp?: { applied: boolean; denied: number };
    landlock?: { abi: number; applied: boolean; threads: number; rules: { path: string; code?: string }[] };
  };
  noNewPrivs: string;
  threads: { nnp: string; seccomp: string }[];
}

const EPERM = 1;

describe.skipIf(!haveAddon)("native sandbox (in a child process)", () => {
  let dir = "";
  const paths = () => ({
    secretDir: join(dir, "home"),
    secret: join(dir, "home", "secret"),
    allowed: join(dir, "state"),
    readOnly: join(dir, "tftp"),
  });
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "unsandbox-"));
    const p = paths();
    for (const d of [p.secretDir, p.allowed, p.readOnly]) mkdirSync(d);
    writeFileSync(p.secret, "private\n");
    writeFileSync(join(p.allowed, "in"), "state\n");
    writeFileSync(join(p.readOnly, "in"), "boot file\n");
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function runChild(options: object, withPython: boolean): ChildResult {
    const p = paths();
    const cfg = {
      addon: sandboxAddonPath,
      options,
      ...p,
      python: withPython && existsSync(python) ? python : null,
      probe: pythonProbe,
    };
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", child], {
      env: { ...process.env, SANDBOX_TEST: JSON.stringify(cfg) },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").pop() as string) as ChildResult;
  }

  const landlockAbi = () => {
    const a = sandboxAddon();
    return a.ok ? a.addon.probe().landlockAbi : 0;
  };

  it("probes without changing anything", () => {
    const a = sandboxAddon();
    expect(a.ok).toBe(true);
    if (!a.ok) return;
    const p = a.addon.probe();
    expect(p.deniedSyscalls).toBeGreaterThan(40);
    expect(p.seccompMode).toBe(0);
    expect(p.noNewPrivs).toBe(0);
  });

  it("seccomp: denied syscalls get EPERM on every thread and in children; no_new_privs is 1", () => {
    const r = runChild({ noNewPrivs: true, seccomp: true, landlock: null }, true);
    expect(r.report.seccomp?.applied).toBe(true);
    expect(r.noNewPrivs).toBe("1");
    expect(r.threads.length).toBeGreaterThan(4);
    for (const t of r.threads) expect(t).toEqual({ nnp: "1", seccomp: "2" });
    // no Landlock: files as before
    expect(r.after.readSecretAsync).toBe("ok");
    if (r.before.syscalls === null) return; // no /usr/bin/python3
    const before = r.before.syscalls;
    const after = r.after.syscalls as Record<string, number>;
    expect(before.ptrace, "the control: PTRACE_TRACEME works unconfined").toBe(0);
    for (const name of ["ptrace", "mount", "bpf", "keyctl", "unshare", "init_module"]) {
      expect(after[name], name).toBe(EPERM);
      // as root, the control run fails for other reasons (bad arguments), not EPERM
      if (process.getuid?.() === 0 && name !== "init_module") expect(before[name], name).not.toBe(EPERM);
    }
    expect(after.getpid).toBe(0);
  });

  it.skipIf(landlockAbi() === 0)(
    "landlock: outside the rules nothing opens, sync or async, on any thread; inside it works",
    () => {
      const p = paths();
      const r = runChild(
        {
          noNewPrivs: true,
          seccomp: false,
          landlock: [
            { path: "/usr", access: "rx" },
            { path: "/etc", access: "r" },
            { path: "/proc/self", access: "r" },
            { path: "/dev/null", access: "rw" },
            { path: p.allowed, access: "rwc" },
            { path: p.readOnly, access: "r" },
            { path: join(dir, "missing"), access: "r" },
          ],
        },
        false,
      );
      const ll = r.report.landlock;
      expect(ll?.applied).toBe(true);
      expect(ll?.abi).toBeGreaterThan(0);
      // every thread of the child: main, V8's platform workers, libuv's pool (started), ...
      // (a thread may end between the restriction and the listing: never fewer restricted than listed)
      expect(ll?.threads).toBeGreaterThanOrEqual(r.threads.length);
      expect(ll?.rules.find((x) => x.path.endsWith("missing"))?.code).toBe("ENOENT");
      expect(r.noNewPrivs).toBe("1");
      // the control: all of it worked before
      expect(r.before).toMatchObject({
        readSecretSync: "ok",
        readSecretAsync: "ok",
        readSecretPromise: "ok",
        openSecretDirAsync: "ok",
        writeOutsideAsync: "ok",
        writeReadOnlyAsync: "ok",
        worker: "ok",
      });
      rmSync(join(p.secretDir, "new"), { force: true });
      rmSync(join(p.readOnly, "out"), { force: true });
      expect(r.after).toMatchObject({
        readSecretSync: "EACCES",
        readSecretAsync: "EACCES",
        readSecretPromise: "EACCES",
        openSecretDirAsync: "EACCES",
        writeOutsideAsync: "EACCES",
        writeReadOnlyAsync: "EACCES",
        worker: "EACCES",
        readAllowedAsync: "ok",
        writeAllowedAsync: "ok",
        readReadOnlySync: "ok",
      });
      expect(existsSync(join(p.secretDir, "new"))).toBe(false);
    },
  );
});
