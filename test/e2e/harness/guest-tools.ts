/**
 * The guest image plus test/e2e/guest/nettool.c, built `gcc -static` and appended to
 * the initramfs as a second cpio archive (the kernel unpacks concatenated archives in
 * order), at /usr/local/bin/nettool. This leaves build-guest.sh alone: only the tests
 * that need nettool pay for gcc, and a change to nettool.c rebuilds only this layer.
 *
 * Cached next to the base initramfs, keyed by the sha256 of nettool.c and of the base
 * initramfs; the cache file is written to a temporary name and renamed, so two vitest
 * workers building at once both end with a whole file.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { type GuestImage, repoRoot, requireGuestImage } from "./prereqs.js";

export const nettoolSource = join(repoRoot, "test/e2e/guest/nettool.c");

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex").slice(0, 16);

/** A static nettool for the host side (inside a namespace): built once, cached. */
export function hostNettool(): string {
  const src = readFileSync(nettoolSource);
  const dir = join(dirname(requireGuestImage().initrd), "tools");
  const bin = join(dir, `nettool-${sha(src)}`);
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}.tmp`;
    execFileSync("gcc", ["-static", "-O2", "-o", tmp, nettoolSource], { stdio: "pipe", timeout: 120_000 });
    renameSync(tmp, bin);
  }
  return bin;
}

/** The guest image whose initrd also holds /usr/local/bin/nettool. */
export function guestImageWithTools(base: GuestImage = requireGuestImage()): GuestImage {
  const bin = hostNettool();
  const baseInitrd = readFileSync(base.initrd);
  const out = join(dirname(bin), `initramfs-tools-${sha(Buffer.concat([baseInitrd, readFileSync(bin)]))}.gz`);
  if (!existsSync(out)) {
    const work = mkdtempSync(join(dirname(bin), "layer."));
    try {
      mkdirSync(join(work, "root/usr/local/bin"), { recursive: true });
      execFileSync("cp", [bin, join(work, "root/usr/local/bin/nettool")]);
      // busybox cpio takes the file list on stdin, like cpio; the archive is gzipped.
      const list = "usr\nusr/local\nusr/local/bin\nusr/local/bin/nettool\n";
      const cpio = execFileSync("busybox", ["cpio", "-o", "-H", "newc"], {
        cwd: join(work, "root"),
        input: list,
        maxBuffer: 64 * 1024 * 1024,
        stdio: ["pipe", "pipe", "pipe"],
      });
      const gz = execFileSync("gzip", ["-6", "-c"], { input: cpio, maxBuffer: 64 * 1024 * 1024 });
      const tmp = `${out}.${process.pid}.tmp`;
      writeFileSync(tmp, Buffer.concat([baseInitrd, gz]));
      renameSync(tmp, out);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return { ...base, initrd: out };
}

/** The "key=value" pairs of the nettool result line that starts with `kind` ("udpprobe", ...). */
export function nettoolLine(output: string, kind: string): Record<string, string> {
  const line = output.split("\n").find((l) => l.startsWith(`${kind} `));
  if (!line) throw new Error(`no "${kind}" line from nettool in:\n${output}`);
  return Object.fromEntries(
    line
      .split(" ")
      .slice(1)
      .map((kv) => kv.split("=") as [string, string]),
  );
}
