/**
 * A QEMU guest driven over its serial console.
 *
 * QEMU runs inside the test's namespace with the kernel and initramfs from
 * test/e2e/guest/build-guest.sh, `-serial stdio`, one NIC (`-device MODEL,netdev=n0,
 * mac=…`) on the `-netdev` the test gives. The guest's /init configures eth0 from
 * `usernet.ip=` / `usernet.gw=` on the kernel command line, prints a ready marker,
 * turns off tty echo and leaves a shell on ttyS0.
 *
 * `run(cmd)` writes
 *     printf '%s\n' "__UB""EGIN_<n>"; { cmd
 *     } </dev/null 2>&1; printf '%s %d\n' "__UE""ND_<n>" $?
 * and returns what was printed between the two markers plus the exit code. The
 * markers are split by quotes in the command text, so even an echoed command line can
 * never look like output. Commands run one at a time (queued). A command that
 * overruns its time gets a ^C (the shell owns ttyS0 as controlling terminal, so that
 * interrupts it) and run() rejects; the shell stays usable.
 *
 * Accelerator: the build script's verdict (KVM only where it boots; nested KVM hangs on
 * some machines), or USERNET_E2E_ACCEL. Boot under TCG takes ~3.5 s with virtio-net and
 * ~6 s with e1000 (its link comes up ~2 s after `ip link set up`; /init waits for it).
 */
import type { Netns } from "./netns.js";
import { type GuestImage, requireGuestImage, trace } from "./prereqs.js";
import type { Proc } from "./proc.js";

export type NicModel = "e1000" | "virtio-net-pci";

export interface GuestOptions {
  /** a label for error messages */
  name?: string;
  /** the `-netdev` value; the id must be "n0" (the NIC refers to it) unless `rawArgs` is used */
  netdev?: string;
  nic?: NicModel;
  /** default 52:54:00:12:34:56 (QEMU's) */
  mac?: string;
  /** static address with prefix, e.g. "10.0.2.15/24"; none when absent */
  ip?: string;
  /** default route */
  gw?: string;
  mtu?: number;
  /**
   * Disk-less network boot (`-boot n`, no -kernel/-initrd/-append): the NIC's iPXE ROM
   * (Debian's ipxe-qemu) takes everything from DHCP and TFTP; the kernel command line
   * comes from the boot script, so ip/gw/mtu/append do not apply. SeaBIOS's and
   * iPXE's messages appear on the serial console before the kernel's.
   */
  netboot?: boolean;
  /** "dig": boot the initramfs that also holds dig (~25 MB more to unpack) */
  initrd?: "base" | "dig";
  /** more kernel command-line words */
  append?: string[];
  /**
   * Network arguments taken as they are (e.g. parsed from usernet's printed attach
   * line) instead of netdev/nic/mac. The harness still supplies kernel, initrd, accel,
   * serial and display options.
   */
  rawArgs?: string[];
  /** more QEMU arguments */
  extraArgs?: string[];
  /** default 90 s: TCG on 2 busy cores */
  bootTimeoutMs?: number;
  memoryMb?: number;
}

export interface RunResult {
  code: number;
  output: string;
}

const readyMarker = "USERNET-GUEST-READY";
const errorMarker = /USERNET-GUEST-ERROR: (.*)/;

let nextCommandId = 1;

/** Unconsumed serial output beyond this is a runaway command; run() fails instead of growing. */
const maxPending = 16 * 1024 * 1024;

export class Guest {
  private queue: Promise<unknown> = Promise.resolve();
  /** serial output not yet consumed by start()/run(), \r removed */
  private pending = "";

  private constructor(
    readonly name: string,
    readonly proc: Proc,
    readonly args: readonly string[],
  ) {
    proc.tapStdout((chunk) => {
      this.pending += chunk.replace(/\r/g, "");
      if (this.pending.length > maxPending) this.pending = this.pending.slice(-maxPending);
    });
  }

  /** Boots a guest inside `ns` and waits for its shell. */
  static async start(ns: Netns, opts: GuestOptions, image: GuestImage = requireGuestImage()): Promise<Guest> {
    const name = opts.name ?? "guest";
    const args = qemuArgs(opts, image);
    const proc = ns.spawn(`qemu ${name}`, "qemu-system-x86_64", args, { stdin: "pipe" });
    const g = new Guest(name, proc, args);
    const t0 = Date.now();
    trace(`${name}: booting (${opts.nic ?? "raw args"}, ${image.accel})`);
    try {
      await proc.until(`${name}'s ready marker`, opts.bootTimeoutMs ?? 90_000, () => {
        const err = errorMarker.exec(g.pending);
        if (err) throw new Error(`${name}: guest init failed: ${err[1]}\n${proc.tail()}`);
        const at = g.pending.indexOf(readyMarker);
        if (at < 0) return undefined;
        g.pending = g.pending.slice(at + readyMarker.length);
        return true;
      });
    } catch (e) {
      await proc.kill(2000);
      throw new Error(`${(e as Error).message}\nqemu-system-x86_64 ${args.join(" ")}`);
    }
    trace(`${name}: ready after ${Date.now() - t0} ms`);
    return g;
  }

  /** The end of what the serial console printed (the kept tail), \r removed. */
  serial(): string {
    return this.proc.stdout.replace(/\r/g, "");
  }

  /** Runs a shell command in the guest; resolves with its exit code and output. */
  run(cmd: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    const r = this.queue.then(() => this.runNow(cmd, opts.timeoutMs ?? 30_000));
    this.queue = r.catch(() => undefined);
    return r;
  }

  private async runNow(cmd: string, timeoutMs: number): Promise<RunResult> {
    if (this.proc.exit) throw new Error(`${this.name}: QEMU is not running\n${this.proc.tail()}`);
    const id = `${process.pid}_${nextCommandId++}`;
    const begin = `__UBEGIN_${id}\n`;
    const end = new RegExp(`__UEND_${id} (\\d+)\n`);
    this.proc.write(
      `printf '%s\\n' "__UB""EGIN_${id}"; { ${cmd}\n} </dev/null 2>&1; printf '%s %d\\n' "__UE""ND_${id}" $?\n`,
    );
    const t0 = Date.now();
    try {
      const r = await this.proc.until(
        `the end of \`${cmd}\` in ${this.name}`,
        timeoutMs,
        (): RunResult | undefined => {
          const b = this.pending.indexOf(begin);
          if (b < 0) return undefined;
          const m = end.exec(this.pending.slice(b + begin.length));
          if (!m) {
            if (this.pending.length >= maxPending)
              throw new Error(`${this.name}: \`${cmd}\` printed over ${maxPending} bytes`);
            return undefined;
          }
          const output = this.pending.slice(b + begin.length, b + begin.length + m.index);
          this.pending = this.pending.slice(b + begin.length + m.index + m[0].length);
          return { code: Number(m[1]), output };
        },
      );
      trace(`${this.name}: \`${cmd}\` → ${r.code} in ${Date.now() - t0} ms`);
      return r;
    } catch (e) {
      // Interrupt the command so that the next one finds a prompt; drop its output.
      this.proc.write("\x03");
      await new Promise((r) => setTimeout(r, 300));
      this.pending = "";
      throw e;
    }
  }

  /** Like run(), but rejects unless the exit code is 0. */
  async runOk(cmd: string, opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(cmd, opts);
    if (r.code !== 0) throw new Error(`${this.name}: \`${cmd}\` exited ${r.code}:\n${r.output}`);
    return r.output;
  }

  /** Kills QEMU by pid. */
  async close(): Promise<void> {
    await this.proc.kill(2000);
  }
}

/** The QEMU argv (without the binary) for a guest. */
export function qemuArgs(opts: GuestOptions, image: GuestImage): string[] {
  let initrd = image.initrd;
  if (opts.initrd === "dig") {
    if (!image.initrdDig) throw new Error("Guest: the guest build printed no initrd_dig=");
    initrd = image.initrdDig;
  }
  // no_timer_check: under TCG on a loaded host the kernel's check that the timer
  // interrupt arrives can miss, and it panics ("IO-APIC + timer doesn't work")
  const append = ["console=ttyS0", "quiet", "panic=-1", "no_timer_check"];
  if (opts.ip) append.push(`usernet.ip=${opts.ip}`);
  if (opts.gw) append.push(`usernet.gw=${opts.gw}`);
  if (opts.mtu) append.push(`usernet.mtu=${opts.mtu}`);
  append.push(...(opts.append ?? []));
  const args = [
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-m",
    String(opts.memoryMb ?? 256),
    "-accel",
    image.accel,
    // graphics=off: SeaBIOS and iPXE then print on the serial console too.
    ...(opts.netboot
      ? ["-boot", "n", "-machine", "graphics=off"]
      : ["-kernel", image.kernel, "-initrd", initrd, "-append", append.join(" ")]),
    "-serial",
    "stdio",
  ];
  if (opts.rawArgs) {
    args.push(...opts.rawArgs);
  } else {
    if (!opts.netdev) throw new Error("Guest: netdev or rawArgs is required");
    args.push(
      "-netdev",
      opts.netdev,
      "-device",
      `${opts.nic ?? "virtio-net-pci"},netdev=n0,mac=${opts.mac ?? "52:54:00:12:34:56"}`,
    );
  }
  args.push(...(opts.extraArgs ?? []));
  return args;
}
