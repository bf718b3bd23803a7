/**
 * The private runtime directory that `npm start` (usernet with no -netdev) keeps its
 * hub socket and API socket in: `$XDG_RUNTIME_DIR/usernet` when XDG_RUNTIME_DIR is
 * usable, else `<tmpdir>/usernet-<uid>` (defaults.ts has the path rules).
 *
 * Theory of operation
 * - Whoever can connect to the hub socket puts frames on the virtual LAN and reaches
 *   the owner's loopback through 10.0.2.2 as the owner; whoever can connect to the API
 *   socket controls usernet. So the directory must be ours alone: a directory, not a
 *   symlink, owned by our uid, mode exactly 0700. The sockets in it are 0600 as well,
 *   but the directory is what keeps other users out (connect(2) needs search permission
 *   on every directory of the path), also in the moment between bind and chmod.
 * - XDG_RUNTIME_DIR is "usable" when it is an absolute path to a directory (not a
 *   symlink) owned by us with no group or other permissions, as the XDG spec promises
 *   and pam_systemd makes it. When it is set but not usable, usernet says why and uses
 *   the fallback, rather than trusting a directory someone else may control.
 * - The fallback lives in a shared, sticky directory (/tmp): another user can create
 *   `/tmp/usernet-<uid>` before us (a directory of theirs, or a symlink to one). So
 *   after `mkdir` (mode 0700; EEXIST is fine) the path is checked with lstat and
 *   refused unless it is ours and 0700. Once it is, the sticky bit keeps others from
 *   renaming or replacing it. A directory of ours with a wider mode is refused too, not
 *   repaired: something may already have been reached through it.
 * - Only the last component is created: a missing XDG_RUNTIME_DIR or TMPDIR is an
 *   error, not something to create.
 * Synchronous: it runs once at start-up, before anything listens.
 */
import * as fs from "node:fs";
import { defaultRuntimeDir } from "./defaults.js";

/** The few fs calls the checks make, so tests can lie about ownership. */
export interface RuntimeDirFs {
  lstat(path: string): { isDirectory(): boolean; isSymbolicLink(): boolean; uid: number; mode: number };
  mkdir(path: string, mode: number): void;
  chmod(path: string, mode: number): void;
}

export const nodeRuntimeDirFs: RuntimeDirFs = {
  lstat: (p) => fs.lstatSync(p),
  mkdir: (p, mode) => fs.mkdirSync(p, { mode }),
  chmod: (p, mode) => fs.chmodSync(p, mode),
};

const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? String(e);

/** Why `path` cannot be the XDG runtime directory, or undefined when it can. */
export function xdgRuntimeDirProblem(path: string, uid: number, f: RuntimeDirFs = nodeRuntimeDirFs) {
  if (!path.startsWith("/")) return "is not an absolute path";
  let st: ReturnType<RuntimeDirFs["lstat"]>;
  try {
    st = f.lstat(path.replace(/(.)\/+$/, "$1"));
  } catch (e) {
    return `cannot be used (${code(e)})`;
  }
  if (st.isSymbolicLink()) return "is a symlink";
  if (!st.isDirectory()) return "is not a directory";
  if (st.uid !== uid) return `is owned by uid ${st.uid}, not by us (uid ${uid})`;
  if ((st.mode & 0o077) !== 0) return `has mode ${octal(st.mode)}; group and others must have no access`;
  return undefined;
}

/**
 * The environment the defaults are computed from: `env` itself, or without
 * XDG_RUNTIME_DIR when that is set but not usable (with a note saying why).
 */
export function runtimeEnv(
  env: NodeJS.ProcessEnv,
  uid: number,
  f: RuntimeDirFs = nodeRuntimeDirFs,
): { env: NodeJS.ProcessEnv; note?: string } {
  const xdg = env.XDG_RUNTIME_DIR;
  if (!xdg) return { env };
  const problem = xdgRuntimeDirProblem(xdg, uid, f);
  if (!problem) return { env };
  const { XDG_RUNTIME_DIR: _, ...rest } = env;
  return {
    env: rest,
    note: `XDG_RUNTIME_DIR=${xdg} ${problem}; using ${defaultRuntimeDir(rest, uid)} instead`,
  };
}

/**
 * Creates the runtime directory (mode 0700) if it is missing and checks that it is
 * ours alone; throws an Error that says what is wrong and what to do.
 */
export function prepareRuntimeDir(dir: string, uid: number, f: RuntimeDirFs = nodeRuntimeDirFs): void {
  const refuse = (why: string) =>
    new Error(
      `runtime directory ${dir} ${why}; refusing to put usernet's sockets there ` +
        "(remove it, or set XDG_RUNTIME_DIR to a private directory, or give -netdev options)",
    );
  let created = false;
  try {
    f.mkdir(dir, 0o700);
    created = true;
  } catch (e) {
    if (code(e) !== "EEXIST") throw refuse(`cannot be created (${code(e)})`);
  }
  let st: ReturnType<RuntimeDirFs["lstat"]>;
  try {
    st = f.lstat(dir);
  } catch (e) {
    throw refuse(`cannot be checked (${code(e)})`);
  }
  if (st.isSymbolicLink()) throw refuse("is a symlink");
  if (!st.isDirectory()) throw refuse("is not a directory");
  if (st.uid !== uid) throw refuse(`is owned by uid ${st.uid}, not by us (uid ${uid})`);
  if ((st.mode & 0o777) !== 0o700) {
    // a directory we just made got less than 0700 from the umask: ours to fix
    if (created && (st.mode & 0o077) === 0) {
      f.chmod(dir, 0o700);
      return;
    }
    throw refuse(`has mode ${octal(st.mode)}, not 0700`);
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, "0")}`;
}
