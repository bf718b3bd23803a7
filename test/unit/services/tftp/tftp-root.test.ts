import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fc, test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../../src/log.js";
import { decodeTftp, encodeTftp } from "../../../../src/services/tftp/tftp-packet.js";
import { normaliseTftpPath, TftpRoot } from "../../../../src/services/tftp/tftp-root.js";
import { type TftpFile, TftpServer } from "../../../../src/services/tftp/tftp-server.js";

let base: string;
let root: string;

beforeAll(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), "usernet-tftp-"));
  root = path.join(base, "root");
  fs.mkdirSync(path.join(root, "sub", "deeper"), { recursive: true });
  fs.writeFileSync(path.join(root, "pxelinux.0"), Buffer.from("PXE image"));
  fs.writeFileSync(path.join(root, "sub", "deeper", "vmlinuz"), Buffer.alloc(70_000, 7));
  fs.writeFileSync(path.join(base, "secret"), "outside the root");
  fs.writeFileSync(path.join(root, "unreadable"), "x");
  fs.chmodSync(path.join(root, "unreadable"), 0o000);
  fs.symlinkSync(path.join(base, "secret"), path.join(root, "escape"));
  fs.symlinkSync("../secret", path.join(root, "escape-relative"));
  fs.symlinkSync(base, path.join(root, "up"));
  fs.symlinkSync("sub/deeper/vmlinuz", path.join(root, "kernel"));
  fs.symlinkSync("sub", path.join(root, "subdir-link"));
  fs.symlinkSync("nowhere", path.join(root, "dangling"));
  execFileSync("mkfifo", [path.join(root, "fifo")]);
});

afterAll(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/**
 * Runs `fn` with the effective uid/gid of nobody when this process is root (CI is):
 * root bypasses file modes, so the check would pass vacuously. seteuid (not setuid)
 * keeps the saved uid 0 to return to; glibc applies it to every thread, including
 * libuv's pool that does the file I/O. The test worker is a forked process, so no
 * other file's tests share this identity.
 */
async function unprivileged(fn: () => Promise<void>): Promise<void> {
  if (process.getuid?.() !== 0 || !process.seteuid || !process.setegid) return fn();
  fs.chmodSync(base, 0o755); // mkdtemp made it 0700: nobody must reach the root
  process.setegid(65534);
  process.seteuid(65534);
  try {
    expect(process.geteuid?.()).toBe(65534);
    await fn();
  } finally {
    process.seteuid(0);
    process.setegid(0);
  }
}

async function openOk(r: TftpRoot, name: string): Promise<TftpFile> {
  const f = await r.open(name);
  if ("error" in f) throw new Error(`${name}: ${f.error}`);
  return f;
}

describe("normaliseTftpPath", () => {
  it("keeps plain relative paths and drops . and empty components", () => {
    expect(normaliseTftpPath("pxelinux.0")).toEqual({ ok: true, value: "pxelinux.0" });
    expect(normaliseTftpPath("./a//b/./c")).toEqual({ ok: true, value: "a/b/c" });
  });

  it("refuses what could leave the root or is not a file name", () => {
    const reason = (s: string, abs?: "refuse" | "root-relative") => {
      const r = normaliseTftpPath(s, abs);
      return r.ok ? `ok:${r.value}` : r.reason;
    };
    expect(reason("../x")).toBe("tftp-path-dotdot");
    expect(reason("a/../../x")).toBe("tftp-path-dotdot");
    expect(reason("a/..")).toBe("tftp-path-dotdot");
    expect(reason("/etc/passwd")).toBe("tftp-path-absolute");
    expect(reason("/etc/passwd", "root-relative")).toBe("ok:etc/passwd");
    expect(reason("/../x", "root-relative")).toBe("tftp-path-dotdot");
    expect(reason("a\\..\\x")).toBe("tftp-path-backslash");
    expect(reason("sub/")).toBe("tftp-path-directory");
    expect(reason(".")).toBe("tftp-path-empty");
    expect(reason("a\0b")).toBe("tftp-path-nul");
    expect(reason("..foo")).toBe("ok:..foo");
  });

  test.prop([fc.array(fc.constantFrom("a", "..", ".", "", "b.c", "...", "/"), { maxLength: 8 })])(
    "an accepted path never has a .. component nor starts with /",
    (parts) => {
      const r = normaliseTftpPath(parts.join("/"), "root-relative");
      if (r.ok) {
        expect(r.value.split("/")).not.toContain("..");
        expect(r.value.startsWith("/")).toBe(false);
        expect(r.value.split("/")).not.toContain("");
      }
    },
  );
});

describe("TftpRoot", () => {
  it("serves a file at the top and in a subdirectory", async () => {
    const r = new TftpRoot(root);
    const f = await openOk(r, "pxelinux.0");
    expect(f.size).toBe(9);
    expect(await f.read(0, 100)).toEqual(Buffer.from("PXE image"));
    expect(await f.read(4, 3)).toEqual(Buffer.from("ima"));
    expect(await f.read(9, 10)).toEqual(Buffer.alloc(0));
    f.close();
    const k = await openOk(r, "sub/deeper/vmlinuz");
    expect(k.size).toBe(70_000);
    expect(await k.read(65_000, 10_000)).toEqual(Buffer.alloc(5_000, 7));
    k.close();
  });

  it("refuses ../x, a/../../x, /etc/passwd and backslashes", async () => {
    const r = new TftpRoot(root);
    for (const name of [
      "../secret",
      "sub/../../secret",
      "/etc/passwd",
      "..\\secret",
      "sub\\..\\pxelinux.0",
    ]) {
      expect(await r.open(name), name).toEqual({ error: "access-violation" });
    }
  });

  it("serves /x from the root with absolutePaths root-relative, never the host's file", async () => {
    const r = new TftpRoot(root, { absolutePaths: "root-relative" });
    const f = await openOk(r, "/pxelinux.0");
    expect(f.size).toBe(9);
    f.close();
    expect(await r.open("/etc/passwd")).toEqual({ error: "not-found" });
  });

  it("refuses symlinks that point outside the root", async () => {
    const r = new TftpRoot(root);
    expect(await r.open("escape")).toEqual({ error: "access-violation" });
    expect(await r.open("escape-relative")).toEqual({ error: "access-violation" });
    expect(await r.open("up/secret")).toEqual({ error: "access-violation" });
  });

  it("follows symlinks that stay inside the root", async () => {
    const r = new TftpRoot(root);
    const k = await openOk(r, "kernel");
    expect(k.size).toBe(70_000);
    k.close();
    const v = await openOk(r, "subdir-link/deeper/vmlinuz");
    expect(v.size).toBe(70_000);
    v.close();
  });

  it("refuses directories, FIFOs and trailing slashes", async () => {
    const r = new TftpRoot(root);
    expect(await r.open("sub")).toEqual({ error: "access-violation" });
    expect(await r.open("subdir-link")).toEqual({ error: "access-violation" });
    expect(await r.open("sub/")).toEqual({ error: "access-violation" });
    expect(await r.open("fifo")).toEqual({ error: "access-violation" });
  });

  it("reports missing files as not-found", async () => {
    const r = new TftpRoot(root);
    expect(await r.open("missing")).toEqual({ error: "not-found" });
    expect(await r.open("pxelinux.0/x")).toEqual({ error: "not-found" });
    expect(await r.open("dangling")).toEqual({ error: "not-found" });
    expect(await r.open(`${"a".repeat(300)}`)).toEqual({ error: "not-found" });
    expect(await new TftpRoot(path.join(base, "no-such-root")).open("x")).toEqual({ error: "not-found" });
  });

  it("refuses files it may not read (as nobody when the suite runs as root)", async () => {
    await unprivileged(async () => {
      expect(await new TftpRoot(root).open("unreadable")).toEqual({ error: "access-violation" });
      // the same identity reads the rest of the root: the mode, not the path, refused it
      (await openOk(new TftpRoot(root), "pxelinux.0")).close();
    });
  });

  it("works through a root that is itself a symlink", async () => {
    const link = path.join(base, "root-link");
    fs.symlinkSync(root, link);
    const f = await openOk(new TftpRoot(link), "sub/deeper/vmlinuz");
    expect(f.size).toBe(70_000);
    f.close();
    expect(await new TftpRoot(link).open("escape")).toEqual({ error: "access-violation" });
  });
});

describe("TftpServer over TftpRoot", () => {
  it("serves a file from the directory and refuses an escape", async () => {
    const server = new TftpServer({ files: new TftpRoot(root), logger: silentLogger, root });
    const client = { addr: 0x0a00020f, port: 1234 };
    const rrq = (filename: string) => encodeTftp({ op: "rrq", filename, mode: "octet", options: [] });
    const [d1] = await server.handle({ client, serverPort: 69, payload: rrq("kernel") }, 0);
    const blocks: Buffer[] = [];
    let reply = d1;
    for (let block = 1; reply !== undefined; block++) {
      const p = decodeTftp(reply.payload);
      expect(p).toMatchObject({ ok: true, value: { op: "data", block } });
      if (p.ok && p.value.op === "data") blocks.push(Buffer.from(p.value.data));
      const ack = encodeTftp({ op: "ack", block });
      [reply] = await server.handle({ client, serverPort: reply.fromPort, payload: ack }, 0);
    }
    expect(Buffer.concat(blocks)).toEqual(fs.readFileSync(path.join(root, "sub", "deeper", "vmlinuz")));
    const [e] = await server.handle({ client, serverPort: 69, payload: rrq("../secret") }, 0);
    expect(e && decodeTftp(e.payload)).toEqual({
      ok: true,
      value: { op: "error", code: 2, message: "access violation" },
    });
    expect(server.stats()).toMatchObject({ completed: 1, active: 0 });
  });
});
