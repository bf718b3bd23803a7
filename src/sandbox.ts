/**
 * The process confines itself once start-up is done (`usernet --sandbox`, and the
 * slirp4netns drop-in's --enable-sandbox / --enable-seccomp): what a Config needs,
 * turned into a policy for native/sandbox.c, applied, and told in one log line.
 *
 * Theory of operation
 * - When: after every listener, TAP (and its namespace join), API socket and file
 *   that start-up opens is open. Descriptors already open stay usable whatever the
 *   policy says (Landlock checks at open time), so only what usernet opens later
 *   needs a rule.
 * - no_new_privs: always, with either of the others.
 * - seccomp: the deny-list of native/sandbox.c (ptrace, mount, kexec, modules, bpf,
 *   perf, keyring, io_uring, namespaces, ...), EPERM, on every thread, inherited by
 *   smbd and guestfwd commands started later. Failing to install it is fatal.
 * - Landlock: read-only the system (/usr, /etc and the /bin, /lib links, for the
 *   loader, glibc's resolver and name service, time zones), the package itself (Node
 *   loads some modules lazily), /proc/self, /dev/null and /dev/urandom; then what the
 *   Config names: each tftp= root read-only, each smb= directory read-write, the
 *   state directory read-write (created first, 0700), the runtime directory
 *   (sockets) read-write, /dev/net/tun when there are TAPs, each VDE switch directory
 *   read-write (its datagram sockets are made as clients come). Executing files is
 *   allowed (under /usr) only when something must be started later: smbd for smb=
 *   (which also needs the temporary directory where its private directory is made),
 *   a guestfwd=...-cmd: command, or a TAP's downscript= (which may also execute its
 *   own file). Everything else (the home directory, other users' files, /tmp
 *   otherwise) can be neither read nor written. A kernel without
 *   Landlock is logged and not fatal; a kernel that has it and refuses the policy,
 *   or a thread that cannot be reached, is fatal.
 * - Not confined: the network (NAT connects anywhere by design; Landlock's TCP rules
 *   are not used), connecting to unix sockets, signals; a guestfwd command runs with
 *   usernet's own policy, which may be too narrow for it. A unix socket in a
 *   directory outside the runtime directory stays behind at exit (its removal is
 *   not allowed); the next start removes it as stale.
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Config } from "./config.js";
import type { Logger } from "./log.js";
import { packageRoot } from "./native/binding.js";
import { type SandboxApplyReport, sandboxAddon } from "./native/sandbox.js";

export interface SandboxRequest {
  seccomp: boolean;
  landlock: boolean;
}

export interface SandboxRule {
  /** what the path is for, in the log line */
  what: string;
  path: string;
  /** r read, w write, x execute, c create/remove, i device ioctl */
  access: string;
  /** system paths that may be absent here (/lib64 on arm64): not worth a word */
  optional?: boolean;
}

export interface SandboxEnvironment {
  packageRoot: string;
  /** where smbd's private directories are made (os.tmpdir()) */
  tmpdir: string;
  /** usernet's own directory for sockets ($XDG_RUNTIME_DIR/usernet), when known */
  runtimeDir?: string;
}

const systemPaths = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64"];

/** The Landlock rules a Config needs (pure: the environment is a parameter). */
export function sandboxRules(config: Config, env: SandboxEnvironment): SandboxRule[] {
  const users = config.netdevs.flatMap((n) => (n.type === "user" ? [n] : []));
  const smb = users.flatMap((u) => (u.smb !== undefined ? [u.smb] : []));
  // a TAP's downscript runs at exit, after confinement
  const downscripts = config.netdevs.flatMap((n) => (n.type === "tap" && n.downscript ? [n.downscript] : []));
  const spawns =
    smb.length > 0 ||
    downscripts.length > 0 ||
    users.some((u) => u.guestfwd.some((g) => g.target.kind === "cmd"));
  const rules: SandboxRule[] = systemPaths.map((path) => ({
    what: "system",
    path,
    access: spawns ? "rx" : "r",
    optional: true,
  }));
  rules.push({ what: "package", path: env.packageRoot, access: "r" });
  rules.push({ what: "proc", path: "/proc/self", access: "r" });
  rules.push({ what: "dev", path: "/dev/null", access: "rw" });
  rules.push({ what: "dev", path: "/dev/urandom", access: "r" });
  if (config.netdevs.some((n) => n.type === "tap"))
    rules.push({ what: "dev", path: "/dev/net/tun", access: "rwi" });
  for (const u of users) if (u.tftp !== undefined) rules.push({ what: "tftp", path: u.tftp, access: "r" });
  for (const dir of smb) rules.push({ what: "smb", path: dir, access: "rwc" });
  // a VDE port binds a datagram socket in its switch directory (each client of a listener, each rejoin)
  for (const n of config.netdevs)
    if (n.type === "vde") rules.push({ what: "vde", path: n.dir, access: "rwc" });
  if (smb.length > 0) rules.push({ what: "smbd-tmp", path: env.tmpdir, access: "rwc" });
  for (const d of downscripts)
    rules.push({ what: "downscript", path: d.path, access: "rx", optional: d.ifExists });
  if (config.stateDir !== undefined) rules.push({ what: "state", path: config.stateDir, access: "rwc" });
  // absent unless the default listeners made it: optional
  if (env.runtimeDir !== undefined)
    rules.push({ what: "runtime", path: env.runtimeDir, access: "rwc", optional: true });
  return rules;
}

export class SandboxError extends Error {
  readonly code = "ERR_USERNET_SANDBOX";
}

const accessWords = (a: string) =>
  a.includes("w") || a.includes("c") ? "rw" : a.includes("x") ? "rx" : "ro";

/** The one log line, and whether everything asked for was applied (Landlock missing from the kernel is not a failure). */
export function describeSandbox(
  want: SandboxRequest,
  report: SandboxApplyReport,
  rules: readonly SandboxRule[],
): { line: string; ok: boolean } {
  const parts = [`no_new_privs ${report.noNewPrivs ? "on" : "FAILED"}`];
  let ok = report.noNewPrivs;
  if (want.seccomp) {
    const s = report.seccomp;
    if (s?.applied) parts.push(`seccomp on (${s.denied} syscalls denied, EPERM)`);
    else {
      ok = false;
      parts.push(`seccomp FAILED (${s?.error ?? "not applied"})`);
    }
  } else parts.push("seccomp off");
  if (want.landlock) {
    const l = report.landlock;
    if (!l || l.abi === 0) parts.push(`landlock unavailable: ${l?.error ?? "not applied"}`);
    else if (!l.applied) {
      ok = false;
      parts.push(
        `landlock ABI ${l.abi} FAILED (${l.error ?? "not applied"}${l.partial ? "; some threads restricted" : ""})`,
      );
    } else {
      const byRule = new Map(l.rules.map((r, i) => [i, r] as const));
      const shown: string[] = [];
      const missing: string[] = [];
      rules.forEach((rule, i) => {
        const r = byRule.get(i);
        if (r?.code !== undefined) {
          if (!rule.optional) missing.push(`${rule.what} ${rule.path} (${r.code})`);
          return;
        }
        if (rule.what !== "system" && rule.what !== "dev" && rule.what !== "proc")
          shown.push(`${rule.what} ${accessWords(rule.access)} ${rule.path}`);
      });
      const system = rules.some((r) => r.what === "system" && r.access.includes("x")) ? "rx" : "ro";
      shown.unshift(`system ${system}`);
      parts.push(
        `landlock ABI ${l.abi} on (${l.threads} threads): ${shown.join(", ")}` +
          (missing.length > 0 ? `; not allowed (cannot open): ${missing.join(", ")}` : ""),
      );
    }
  } else parts.push("landlock off");
  return { line: `sandbox: ${parts.join(", ")}`, ok };
}

/**
 * Confines this process as asked; logs one line. Throws SandboxError when something
 * asked for could not be applied (the caller stops: running half-confined while the
 * user believes otherwise is worse than not running).
 */
export function confineProcess(
  config: Config,
  want: SandboxRequest,
  log: Logger,
  env: Partial<SandboxEnvironment> = {},
): SandboxApplyReport {
  const loaded = sandboxAddon();
  if (!loaded.ok) throw new SandboxError(`sandbox: cannot confine: ${loaded.reason}`);
  const full: SandboxEnvironment = {
    packageRoot: env.packageRoot ?? packageRoot,
    tmpdir: env.tmpdir ?? tmpdir(),
    ...(env.runtimeDir !== undefined ? { runtimeDir: env.runtimeDir } : {}),
  };
  const rules = want.landlock ? sandboxRules(config, full) : [];
  // the state directory is written later; it must exist for its rule to name it
  if (want.landlock && config.stateDir !== undefined) {
    try {
      mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      log.warn(`sandbox: cannot create the state directory ${config.stateDir}: ${(e as Error).message}`);
    }
  }
  const report = loaded.addon.apply({
    noNewPrivs: true,
    seccomp: want.seccomp,
    landlock: want.landlock ? rules.map(({ path, access }) => ({ path, access })) : null,
  });
  const { line, ok } = describeSandbox(want, report, rules);
  if (!ok) throw new SandboxError(line);
  log.info(line);
  return report;
}
