// The benchmark's guest: the e2e test kernel and initramfs (test/e2e/guest/build-guest.sh,
// which brings iperf3), plus test/e2e/guest/nettool.c built static and appended as a
// second cpio archive (the same layer test/e2e/harness/guest-tools.ts makes for the
// tests). A guest is driven over its serial console with begin/end markers, one
// command at a time, each with a time limit.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Proc } from "./proc.mjs";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const nettoolSource = join(repoRoot, "test/e2e/guest/nettool.c");
const sha = (b) => createHash("sha256").update(b).digest("hex").slice(0, 16);

/** kernel, initrd (with nettool), nettool (host build), accel. */
export function guestImage() {
  const out = execFileSync("bash", [join(repoRoot, "test/e2e/guest/build-guest.sh")], {
    encoding: "utf8",
    timeout: 900_000,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const kv = Object.fromEntries(
    out
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  if (!kv.kernel || !kv.initrd) throw new Error(`build-guest.sh printed no kernel/initrd:\n${out}`);
  const dir = join(dirname(kv.initrd), "tools");
  mkdirSync(dir, { recursive: true });
  const src = readFileSync(nettoolSource);
  const nettool = join(dir, `nettool-${sha(src)}`);
  if (!existsSync(nettool)) {
    const tmp = `${nettool}.${process.pid}.tmp`;
    execFileSync("gcc", ["-static", "-O2", "-o", tmp, nettoolSource], { stdio: "inherit", timeout: 120_000 });
    renameSync(tmp, nettool);
  }
  const base = readFileSync(kv.initrd);
  const initrd = join(dir, `initramfs-tools-${sha(Buffer.concat([base, readFileSync(nettool)]))}.gz`);
  if (!existsSync(initrd)) {
    const work = mkdtempSync(join(dir, "layer."));
    try {
      mkdirSync(join(work, "usr/local/bin"), { recursive: true });
      execFileSync("cp", [nettool, join(work, "usr/local/bin/nettool")]);
      const cpio = execFileSync("busybox", ["cpio", "-o", "-H", "newc"], {
        cwd: work,
        input: "usr\nusr/local\nusr/local/bin\nusr/local/bin/nettool\n",
        maxBuffer: 64 << 20,
        stdio: ["pipe", "pipe", "pipe"],
      });
      const gz = execFileSync("gzip", ["-6", "-c"], { input: cpio, maxBuffer: 64 << 20 });
      const tmp = `${initrd}.${process.pid}.tmp`;
      writeFileSync(tmp, Buffer.concat([base, gz]));
      renameSync(tmp, initrd);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return { kernel: kv.kernel, initrd, nettool, accel: kv.accel === "kvm" ? "kvm" : "tcg" };
}

let nextId = 1;

export class SerialGuest {
  /**
   * Boots QEMU (argv prefix `wrap`, e.g. ip netns exec NS) with the image and the
   * network arguments `net`; waits for the guest's ready marker.
   */
  static async boot(wrap, image, { net, mtu, label = "guest", memoryMb = 512 }) {
    const append = ["console=ttyS0", "quiet", "panic=-1", "usernet.ip=10.0.2.15/24", "usernet.gw=10.0.2.2"];
    if (mtu) append.push(`usernet.mtu=${mtu}`);
    const args = [
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      "-m",
      String(memoryMb),
      "-accel",
      image.accel,
      "-kernel",
      image.kernel,
      "-initrd",
      image.initrd,
      "-append",
      append.join(" "),
      "-serial",
      "stdio",
      ...net,
    ];
    const [cmd, ...pre] = [...wrap, "qemu-system-x86_64"];
    const g = new SerialGuest(new Proc(label, cmd, [...pre, ...args], { stdin: "pipe" }), label);
    await g.proc.until("USERNET-GUEST-READY", 120_000, () => {
      const at = g.pending.indexOf("USERNET-GUEST-READY");
      if (at < 0) return undefined;
      if (/USERNET-GUEST-ERROR: (.*)/.test(g.pending)) throw new Error(`${label}: ${g.pending}`);
      g.pending = g.pending.slice(at + 19);
      return true;
    });
    return g;
  }

  constructor(proc, label) {
    this.proc = proc;
    this.label = label;
    this.pending = "";
    proc.tapStdout((s) => {
      this.pending = (this.pending + s.replace(/\r/g, "")).slice(-(8 << 20));
    });
  }

  /** Runs a shell command; resolves with { code, output }. */
  async run(cmd, timeoutMs = 60_000) {
    const id = `${process.pid}_${nextId++}`;
    const begin = `__UBEGIN_${id}\n`;
    const end = new RegExp(`__UEND_${id} (\\d+)\n`);
    this.proc.write(
      `printf '%s\\n' "__UB""EGIN_${id}"; { ${cmd}\n} </dev/null 2>&1; printf '%s %d\\n' "__UE""ND_${id}" $?\n`,
    );
    try {
      return await this.proc.until(`the end of \`${cmd}\``, timeoutMs, () => {
        const b = this.pending.indexOf(begin);
        if (b < 0) return undefined;
        const rest = this.pending.slice(b + begin.length);
        const m = end.exec(rest);
        if (!m) return undefined;
        this.pending = rest.slice(m.index + m[0].length);
        return { code: Number(m[1]), output: rest.slice(0, m.index) };
      });
    } catch (e) {
      this.proc.write("\x03");
      await new Promise((r) => setTimeout(r, 300));
      this.pending = "";
      throw e;
    }
  }

  close() {
    return this.proc.kill(2000);
  }
}
