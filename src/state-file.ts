/**
 * State that must survive a restart (DHCP leases, runtime forwards) is written
 * atomically: a temp file in the same directory, fsync, rename over the old file, then
 * fsync of the directory so the rename itself is durable. A crash leaves either the old
 * file or the new one, never a torn one.
 */
import fs from "node:fs";
import path from "node:path";

/** Writes `text` to `file` atomically (creating its directory, mode 0700; the file 0600). Throws on failure; the old file is then intact. */
export function writeStateFileSync(file: string, text: string): void {
  const dir = path.dirname(file);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(tmp, "w", 0o600);
    try {
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  syncDirectory(dir);
}

/** Some filesystems refuse fsync on a directory; the rename is then as durable as they allow. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
