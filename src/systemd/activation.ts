/**
 * systemd socket activation (sd_listen_fds(3)), read from the environment: the manager
 * (or `systemd-socket-activate`) opens and binds the listening sockets, starts usernet
 * with them as fds 3, 4, ... and says so in LISTEN_FDS (how many), LISTEN_PID (for
 * whom: ours, or the variables were meant for a parent and are ignored) and
 * LISTEN_FDNAMES (their names, colon-separated: a .socket unit's
 * `FileDescriptorName=`, `systemd-socket-activate --fdname=`).
 *
 * Names say who takes a socket: a hub listener's netdev id (`-netdev stream,id=s0,
 * server=on,...` takes the socket named `s0`), `api` the management API (unix or TCP,
 * whichever the socket is), `dashboard` the dashboard. A socket can be accepted on
 * before usernet has started (a QEMU guest connects at boot; the kernel queues it),
 * which is the point. Unnamed sockets (systemd names them "unknown", or after the
 * socket unit) are matched to nothing and refused at start-up with their names listed.
 *
 * The variables are removed from process.env once read (as sd_listen_fds(unset=1)),
 * so nothing usernet starts (smbd, guestfwd commands) believes they are its own.
 * Limits: stream sockets only (QEMU's datagram transports are not activated).
 */

/** The first fd passed (SD_LISTEN_FDS_START). */
export const listenFdsStart = 3;

export interface ActivatedSocket {
  fd: number;
  name: string;
}

export type ActivationResult = { ok: true; sockets: ActivatedSocket[] } | { ok: false; problem: string };

/**
 * The sockets passed to process `pid`, from `env` (not changed here); an empty list
 * when there are none or they are meant for another process.
 */
export function parseListenFds(env: NodeJS.ProcessEnv, pid: number): ActivationResult {
  const fdsText = env.LISTEN_FDS;
  if (fdsText === undefined) return { ok: true, sockets: [] };
  const pidText = env.LISTEN_PID;
  if (pidText === undefined || !/^\d+$/.test(pidText)) {
    return { ok: false, problem: `LISTEN_FDS is set but LISTEN_PID is ${JSON.stringify(pidText ?? "")}` };
  }
  if (Number(pidText) !== pid) return { ok: true, sockets: [] };
  if (!/^\d+$/.test(fdsText) || Number(fdsText) > 1024) {
    return { ok: false, problem: `LISTEN_FDS=${JSON.stringify(fdsText)}: expected a count of sockets` };
  }
  const n = Number(fdsText);
  const names = env.LISTEN_FDNAMES === undefined ? [] : env.LISTEN_FDNAMES.split(":");
  if (env.LISTEN_FDNAMES !== undefined && names.length !== n) {
    return {
      ok: false,
      problem: `LISTEN_FDNAMES names ${names.length} socket(s) but LISTEN_FDS=${n}`,
    };
  }
  const sockets: ActivatedSocket[] = [];
  for (let i = 0; i < n; i++) sockets.push({ fd: listenFdsStart + i, name: names[i] ?? "unknown" });
  return { ok: true, sockets };
}

/** Removes the activation variables, so children do not take them for theirs. */
export function unsetListenEnv(env: NodeJS.ProcessEnv): void {
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
}

/**
 * The activated sockets by name, handed out once each: `take(name)` gives the fds of
 * that name (a TCP and a unix API socket may share "api") and marks them used;
 * `unused()` lists what nobody took.
 */
export class ActivatedSockets {
  private readonly byName = new Map<string, number[]>();

  constructor(sockets: readonly ActivatedSocket[]) {
    for (const s of sockets) this.byName.set(s.name, [...(this.byName.get(s.name) ?? []), s.fd]);
  }

  has(name: string): boolean {
    return (this.byName.get(name)?.length ?? 0) > 0;
  }

  take(name: string): number[] {
    const fds = this.byName.get(name) ?? [];
    this.byName.delete(name);
    return fds;
  }

  /** the sockets nobody took, as `name=fd` */
  unused(): ActivatedSocket[] {
    return [...this.byName].flatMap(([name, fds]) => fds.map((fd) => ({ fd, name })));
  }
}
