/**
 * What `usernet` with no -netdev/-net option runs (e.g. `npm start`): hub 0 with
 *   user0    a `-netdev user` with QEMU's defaults (10.0.2.0/24),
 *   unix0    a unix stream listener at $XDG_RUNTIME_DIR/usernet/hub0.sock, or
 *            <tmpdir>/usernet-<uid>/hub0.sock without XDG_RUNTIME_DIR,
 * and the management API on api.sock in the same directory (parse.ts adds it).
 * No TCP listener: a TCP port cannot tell local users apart, so any of them could
 * attach to the hub; the runtime directory is private (runtime-dir.ts checks and
 * creates it before start-up). TCP listeners are opt-in with `listen=HOST:PORT`.
 * <tmpdir> is Node's os.tmpdir() rule applied to the environment passed in (TMPDIR,
 * TMP, TEMP, else /tmp), so callers and tests control it. Whether XDG_RUNTIME_DIR is
 * usable is decided before (runtime-dir.ts's runtimeEnv drops it when it is not).
 */
import type { NetdevConfig } from "../config.js";
import type { NetdevEntry } from "./netdev.js";
import { defaultUserIpv6, defaultUserNetdev } from "./netdev-user.js";
import { UsageError } from "./usage-error.js";

function tmpdir(env: NodeJS.ProcessEnv): string {
  let p = env.TMPDIR || env.TMP || env.TEMP || "/tmp";
  if (p.length > 1 && p.endsWith("/")) p = p.slice(0, -1);
  return p;
}

/** The private directory the default sockets live in. */
export function defaultRuntimeDir(env: NodeJS.ProcessEnv, uid: number): string {
  const xdg = env.XDG_RUNTIME_DIR;
  return xdg ? `${xdg.replace(/\/+$/, "")}/usernet` : `${tmpdir(env)}/usernet-${uid}`;
}

export function defaultUnixSocketPath(env: NodeJS.ProcessEnv, uid: number): string {
  return `${defaultRuntimeDir(env, uid)}/hub0.sock`;
}

/** The management API's socket when usernet runs its defaults: next to hub0.sock. */
export function defaultApiSocketPath(env: NodeJS.ProcessEnv, uid: number): string {
  return `${defaultRuntimeDir(env, uid)}/api.sock`;
}

export function defaultNetdevs(env: NodeJS.ProcessEnv, uid: number): NetdevEntry[] {
  const path = defaultUnixSocketPath(env, uid);
  if (Buffer.byteLength(path) > 107) {
    throw new UsageError(
      `default unix socket path ${path} is longer than 107 bytes; set a shorter XDG_RUNTIME_DIR or give -netdev options`,
    );
  }
  const entry = (config: NetdevConfig, form: string): NetdevEntry => ({
    config,
    written: config.type,
    origin: `the default ${form}`,
    implicit: true,
  });
  return [
    entry({ ...defaultUserNetdev("user0", 0), ipv6: defaultUserIpv6() }, "-netdev user,id=user0"),
    entry(
      { type: "stream", id: "unix0", hub: 0, server: true, addr: { type: "unix", path }, reconnect: 0 },
      `-netdev stream,id=unix0 on ${path}`,
    ),
  ];
}
