/**
 * The real `TftpFiles`: read-only access to the regular files under one directory. The
 * one place the TFTP service touches the file system.
 *
 * Theory of operation
 * - A requested name is checked before anything is opened (`normaliseTftpPath`):
 *   refused (access violation) are backslashes, NUL, a ".." component anywhere, a
 *   trailing "/" (a directory), and absolute names. libslirp in effect serves "/x" as
 *   "x" under the root; `absolutePaths: "root-relative"` does the same. "." and empty
 *   components ("a//b", "./a") are dropped.
 * - The name is then resolved with realpath and must still lie inside the real root:
 *   symlinks inside the root that point inside are followed, those that point
 *   outside are refused. The resolved path is opened read-only with O_NOFOLLOW (a
 *   final component swapped for a symlink after the check fails rather than being
 *   followed) and O_NONBLOCK (opening a FIFO must not hang the server), and must be a
 *   regular file with the same device and inode as the path that was checked.
 * - Errors: ENOENT, ENOTDIR, ENAMETOOLONG → "not-found"; everything else (EACCES,
 *   ELOOP, outside the root, not a regular file) → "access-violation".
 * - Reads are positioned (pread), so one open file serves retransmissions in any order;
 *   a short read is retried until the requested length or the end of the file.
 * Limits: a directory component swapped for a symlink between the check and the open
 *   is not caught (only someone who can write inside the root can do that; the guest
 *   cannot, the service is read-only). The root itself may be a symlink.
 */
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { fail, ok, type Result } from "../../stack/wire/result.js";
import type { TftpFile, TftpFiles, TftpOpenError } from "./tftp-server.js";

export interface TftpRootOptions {
  /** "refuse" (default) or "root-relative": serve "/x" as "x", like libslirp */
  absolutePaths?: "refuse" | "root-relative";
}

/**
 * The path relative to the root that `name` asks for, components joined with "/", or
 * the reason it is refused.
 */
export function normaliseTftpPath(
  name: string,
  absolutePaths: "refuse" | "root-relative" = "refuse",
): Result<string> {
  if (name.includes("\\")) return fail("tftp-path-backslash");
  if (name.includes("\0")) return fail("tftp-path-nul");
  if (name.startsWith("/") && absolutePaths === "refuse") return fail("tftp-path-absolute");
  if (name.endsWith("/")) return fail("tftp-path-directory");
  const parts: string[] = [];
  for (const c of name.split("/")) {
    if (c === "..") return fail("tftp-path-dotdot");
    if (c !== "" && c !== ".") parts.push(c);
  }
  if (parts.length === 0) return fail("tftp-path-empty");
  return ok(parts.join("/"));
}

function inside(root: string, p: string): boolean {
  return p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

function errorOf(e: unknown): TftpOpenError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "ENAMETOOLONG"
    ? "not-found"
    : "access-violation";
}

class RootFile implements TftpFile {
  constructor(
    private readonly fh: fs.FileHandle,
    readonly size: number,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  }

  close(): void {
    this.fh.close().catch(() => {});
  }
}

export class TftpRoot implements TftpFiles {
  private readonly absolutePaths: "refuse" | "root-relative";

  constructor(
    readonly dir: string,
    options: TftpRootOptions = {},
  ) {
    this.absolutePaths = options.absolutePaths ?? "refuse";
  }

  async open(relativePath: string): Promise<TftpFile | { error: TftpOpenError }> {
    const rel = normaliseTftpPath(relativePath, this.absolutePaths);
    if (!rel.ok) return { error: "access-violation" };
    let fh: fs.FileHandle | undefined;
    try {
      const root = await fs.realpath(this.dir);
      const real = await fs.realpath(path.join(root, rel.value));
      if (!inside(root, real)) return { error: "access-violation" };
      const checked = await fs.stat(real);
      fh = await fs.open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const st = await fh.stat();
      if (!st.isFile() || st.dev !== checked.dev || st.ino !== checked.ino) {
        await fh.close();
        return { error: "access-violation" };
      }
      return new RootFile(fh, st.size);
    } catch (e) {
      await fh?.close().catch(() => {});
      return { error: errorOf(e) };
    }
  }
}
