/**
 * The private smb.conf for the smbd that serves `smb=DIR` (QEMU's `-netdev user,smb=`).
 *
 * Theory of operation
 * - One share, `[qemu]`, at DIR, writable, open to guests without a password
 *   (`smbclient -N`): unknown users map to the guest account, and every file operation
 *   runs as the user who runs usernet (`force user`), as QEMU does. What a guest
 *   creates there is the invoking user's alone (files 0600, directories 0700).
 * - smbd does not listen: each one serves the single connection it gets on its stdin
 *   (smbd-launcher.ts), so the file has no interfaces or ports. NetBIOS, printers and
 *   user shares are off; the server is a standalone one. Host names are not looked up
 *   (`hostname lookups = no`, the default, said out loud): the peer is always us.
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
  const d = o.runDir;
  return [
    "# written by usernet for its private smbd; removed when usernet stops",
    "[global]",
    "server role = standalone server",
    "disable netbios = yes",
    "hostname lookups = no",
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
    "create mask = 0600",
    "directory mask = 0700",
    "",
  ].join("\n");
}

/** The subdirectories of `runDir` smbd expects to exist. */
export const smbRunSubdirs = ["private", "ncalrpc"] as const;
