/**
 * Typed loader for the sandbox addon (native/sandbox.c, built by node-gyp beside the
 * network addon into build/Release/usernet_sandbox.node; Linux only). A separate
 * addon so confining the process needs nothing else loaded. What it applies, and
 * how every thread is reached, is described in native/sandbox.c; the policy comes
 * from src/sandbox.ts.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { packageRoot } from "./binding.js";

export const sandboxAddonPath = join(packageRoot, "build", "Release", "usernet_sandbox.node");

/** Landlock rights per path, as letters: r read, w write/truncate, x execute, c create/remove, i device ioctl */
export interface LandlockRule {
  path: string;
  access: string;
}

export interface SandboxProbe {
  /** 0: no Landlock (landlockCode says why: ENOSYS not built, EOPNOTSUPP not enabled) */
  landlockAbi: number;
  landlockCode?: string;
  noNewPrivs: number;
  /** 0 none, 2 filter */
  seccompMode: number;
  deniedSyscalls: number;
}

export interface SandboxApplyOptions {
  noNewPrivs: boolean;
  seccomp: boolean;
  /** null: no Landlock */
  landlock: readonly LandlockRule[] | null;
}

export interface SandboxApplyReport {
  noNewPrivs: boolean;
  seccomp?: { applied: boolean; denied: number; code?: string; error?: string };
  landlock?: {
    abi: number;
    applied: boolean;
    /** threads restricted, the caller included */
    threads: number;
    /** some threads restricted, not all (applied is false) */
    partial?: boolean;
    code?: string;
    error?: string;
    /** code: why the rule was not added (ENOENT: no such path) */
    rules: { path: string; access: string; code?: string }[];
  };
}

interface SandboxAddon {
  probe(): SandboxProbe;
  apply(options: SandboxApplyOptions): SandboxApplyReport;
}

let loaded: { ok: true; addon: SandboxAddon } | { ok: false; reason: string } | undefined;

function load(): { ok: true; addon: SandboxAddon } | { ok: false; reason: string } {
  if (process.platform !== "linux") return { ok: false, reason: "the sandbox supports Linux only" };
  if (!existsSync(sandboxAddonPath)) {
    return {
      ok: false,
      reason: `the sandbox addon is not built (${sandboxAddonPath} is missing): run \`npx node-gyp rebuild\` in ${packageRoot}`,
    };
  }
  try {
    const addon = createRequire(import.meta.url)(sandboxAddonPath) as SandboxAddon & { unsupported?: string };
    if (addon.unsupported) return { ok: false, reason: addon.unsupported };
    return { ok: true, addon };
  } catch (e) {
    return {
      ok: false,
      reason: `${sandboxAddonPath} failed to load (${e instanceof Error ? e.message : e})`,
    };
  }
}

/** The addon, or why it cannot be used; never throws. */
export function sandboxAddon(): { ok: true; addon: SandboxAddon } | { ok: false; reason: string } {
  loaded ??= load();
  return loaded;
}
