import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { prepareRuntimeDir, runtimeEnv, xdgRuntimeDirProblem } from "../../../src/cli/runtime-dir.js";

const me = process.getuid?.() ?? 0;
const advice =
  "refusing to put usernet's sockets there (remove it, or set XDG_RUNTIME_DIR to a private directory, or give -netdev options)";

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), "usernet-rtdir-test-"));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

function withMode(dir: string, mode: number): string {
  chmodSync(dir, mode);
  return dir;
}

describe("prepareRuntimeDir", () => {
  it("creates a missing directory with mode 0700", () => {
    const dir = join(base, "usernet-5");
    const old = process.umask(0o022);
    try {
      prepareRuntimeDir(dir, me);
    } finally {
      process.umask(old);
    }
    const st = statSync(dir);
    expect(st.isDirectory()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
  });

  it("makes a directory it created 0700 even under a narrowing umask", () => {
    const dir = join(base, "usernet-5");
    const old = process.umask(0o277);
    try {
      prepareRuntimeDir(dir, me);
    } finally {
      process.umask(old);
    }
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it("accepts an existing private directory of ours", () => {
    const dir = join(base, "mine");
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700);
    expect(() => prepareRuntimeDir(dir, me)).not.toThrow();
  });

  it("refuses a symlink, even to a private directory of ours", () => {
    const real = join(base, "real");
    mkdirSync(real, { mode: 0o700 });
    chmodSync(real, 0o700);
    const dir = join(base, "usernet-5");
    symlinkSync(real, dir);
    expect(() => prepareRuntimeDir(dir, me)).toThrow(`runtime directory ${dir} is a symlink; ${advice}`);
  });

  it("refuses a directory owned by another user", () => {
    const dir = join(base, "theirs");
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700);
    // the directory is ours; checked as if we were uid me+1, it belongs to someone else
    expect(() => prepareRuntimeDir(dir, me + 1)).toThrow(
      `runtime directory ${dir} is owned by uid ${me}, not by us (uid ${me + 1}); ${advice}`,
    );
  });

  it.each([0o755, 0o770, 0o701, 0o1777])("refuses an existing directory with mode %o", (mode) => {
    const dir = join(base, "wide");
    mkdirSync(dir);
    chmodSync(dir, mode);
    const shown = `0${(mode & 0o777).toString(8)}`;
    expect(() => prepareRuntimeDir(dir, me)).toThrow(
      `runtime directory ${dir} has mode ${shown}, not 0700; ${advice}`,
    );
  });

  it("refuses a file in its place and a missing parent", () => {
    const file = join(base, "file");
    writeFileSync(file, "");
    expect(() => prepareRuntimeDir(file, me)).toThrow(
      `runtime directory ${file} is not a directory; ${advice}`,
    );
    const orphan = join(base, "no", "such");
    expect(() => prepareRuntimeDir(orphan, me)).toThrow(
      `runtime directory ${orphan} cannot be created (ENOENT); ${advice}`,
    );
  });
});

describe("runtimeEnv", () => {
  it("keeps a usable XDG_RUNTIME_DIR", () => {
    chmodSync(base, 0o700);
    const env = { XDG_RUNTIME_DIR: base, TMPDIR: "/scratch" };
    expect(runtimeEnv(env, me)).toEqual({ env });
    expect(runtimeEnv({ TMPDIR: "/scratch" }, me)).toEqual({ env: { TMPDIR: "/scratch" } });
  });

  it.each<[string, (dir: string) => string, number, string]>([
    ["missing", (d) => join(d, "gone"), me, "cannot be used (ENOENT)"],
    ["relative", () => "run/user", me, "is not an absolute path"],
    ["group-readable", (d) => withMode(d, 0o750), me, "has mode 0750; group and others must have no access"],
    ["someone else's", (d) => withMode(d, 0o700), me + 1, `is owned by uid ${me}, not by us (uid ${me + 1})`],
    [
      "a symlink",
      (d) => {
        chmodSync(d, 0o700);
        symlinkSync(d, join(d, "link"));
        return join(d, "link");
      },
      me,
      "is a symlink",
    ],
  ])("drops an XDG_RUNTIME_DIR that is %s, saying why", (_what, make, uid, why) => {
    const xdg = make(base);
    expect(xdgRuntimeDirProblem(xdg, uid)).toBe(why);
    expect(runtimeEnv({ XDG_RUNTIME_DIR: xdg, TMPDIR: "/scratch" }, uid)).toEqual({
      env: { TMPDIR: "/scratch" },
      note: `XDG_RUNTIME_DIR=${xdg} ${why}; using /scratch/usernet-${uid} instead`,
    });
  });
});
