/**
 * The private smb.conf for the smbd that serves `smb=DIR` (QEMU's `-netdev user,smb=`).
 *
 * Theory of operation
 * - One share, `[qemu]`, at DIR, writable, open to guests without a password
 *   (`smbclient -N`): unknown users map to the guest account, and every file operation
 *   runs as the user who runs usernet (`force user`), as QEMU does.
 * - smbd listens only on 127.0.0.1 at the port given (`smb ports`); usernet relays the
 *   guest's connections to 10.0.2.4:445/139 there. NetBIOS, printers and user shares
 *   are off; the server is a standalone one.
 * - Every file smbd keeps (pid, locks, state, cache, passdb, ncalrpc sockets, its log)
 *   lives in `runDir`, a private temporary directory, so nothing touches the host's
 *   Samba set-up and several usernets (or netdevs) never share state.
 * Not done: more than one share, read-only shares, passwords. Paths that smb.conf
 * cannot carry as they are (line breaks, `%` macros, edge blanks that it trims) are
 * refused with a message instead of being silently changed.
 */

export interface SmbConfOptions {
  /** the directory the guest sees as \\10.0.2.4\qemu */
  shareDir: string;
  /** the private directory for smbd's own files */
  runDir: string;
  /** smbd's TCP port on 127.0.0.1 */
  port: number;
  /** the user files are read and written as (the invoking user) */
  user: string;
}

/** Why `value` cannot go into smb.conf as it is, or undefined when it can. */
export function smbConfValueProblem(value: string): string | undefined {
  if (value === "") return "is empty";
  if (/[\r\n\0]/.test(value)) return "contains a line break or NUL";
  if (value.includes("%")) return "contains '%' (an smb.conf macro)";
  if (value.trim() !== value) return "starts or ends with blanks";
  return undefined;
}

/** The smb.conf text; throws (a start-up error) when a value cannot be written safely. */
export function smbConf(o: SmbConfOptions): string {
  const values: [string, string][] = [
    ["smb= directory", o.shareDir],
    ["smbd run directory", o.runDir],
    ["user name", o.user],
  ];
  for (const [what, v] of values) {
    const problem = smbConfValueProblem(v);
    if (problem) throw new Error(`${what} '${v}' ${problem}; smb.conf cannot carry it`);
  }
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`bad smbd port ${o.port}`);
  const d = o.runDir;
  return [
    "# written by usernet for its private smbd; removed when usernet stops",
    "[global]",
    "server role = standalone server",
    "interfaces = 127.0.0.1",
    "bind interfaces only = yes",
    `smb ports = ${o.port}`,
    "disable netbios = yes",
    `pid directory = ${d}`,
    `lock directory = ${d}`,
    `state directory = ${d}`,
    `cache directory = ${d}`,
    `private dir = ${d}/private`,
    `ncalrpc dir = ${d}/ncalrpc`,
    `smb passwd file = ${d}/private/smbpasswd`,
    `log file = ${d}/log.smbd`,
    "max log size = 1000",
    "security = user",
    "map to guest = Bad User",
    `guest account = ${o.user}`,
    "load printers = no",
    "printing = bsd",
    "printcap name = /dev/null",
    "disable spoolss = yes",
    "usershare max shares = 0",
    "",
    "[qemu]",
    `path = ${o.shareDir}`,
    "read only = no",
    "guest ok = yes",
    `force user = ${o.user}`,
    "",
  ].join("\n");
}

/** The subdirectories of `runDir` smbd expects to exist. */
export const smbRunSubdirs = ["private", "ncalrpc"] as const;
