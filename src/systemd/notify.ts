/**
 * systemd's service notification (sd_notify(3)) for `Type=notify` units: READY=1 once
 * every listener is bound and the process confined, STATUS= lines a `systemctl status`
 * shows, RELOADING=1 / READY=1 around a SIGHUP reload (with MONOTONIC_USEC, which
 * `Type=notify-reload` wants), STOPPING=1 when a stop begins.
 *
 * NOTIFY_SOCKET names a unix datagram socket; Node has none, so the native addon
 * opens and connects it (native/notify.c) once, at start-up, before any sandbox. No
 * libsystemd and no package from npm: the protocol is one datagram of "KEY=value"
 * lines. Without NOTIFY_SOCKET everything here does nothing; without the addon (or
 * when the socket cannot be opened) it says so once in the log and does nothing.
 * A failed send is logged once and the rest are skipped: the manager has gone or
 * never listened, and usernet goes on serving either way.
 *
 * The variable is removed from process.env once read, so smbd and guestfwd commands
 * do not send in usernet's name.
 */
import type { Logger } from "../log.js";
import { closeFd, notifySend, openNotifySocket } from "../native/binding.js";

export interface Notifier {
  /** whether a manager listens (NOTIFY_SOCKET was set and could be opened) */
  readonly active: boolean;
  ready(status: string): void;
  status(status: string): void;
  reloading(status: string): void;
  stopping(status: string): void;
  close(): void;
}

/** How the notifier reaches the socket: the native addon in the real program. */
export interface NotifySocketIo {
  open(path: string): number;
  send(fd: number, text: string): void;
  close(fd: number): void;
}

const inactive: Notifier = {
  active: false,
  ready() {},
  status() {},
  reloading() {},
  stopping() {},
  close() {},
};

/** A STATUS= value on one line (the protocol is newline-separated). */
const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").slice(0, 1000);

/** CLOCK_MONOTONIC in microseconds (libuv's hrtime is CLOCK_MONOTONIC on Linux). */
const monotonicUsec = () => (process.hrtime.bigint() / 1000n).toString();

export function createNotifier(env: NodeJS.ProcessEnv, log: Logger, io?: NotifySocketIo): Notifier {
  const path = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  if (path === undefined || path === "") return inactive;
  let fd: number;
  let sock: NotifySocketIo;
  try {
    sock = io ?? nativeIo();
    fd = sock.open(path);
  } catch (e) {
    log.warn(
      `NOTIFY_SOCKET=${path}: cannot notify systemd (${e instanceof Error ? e.message : e}); ` +
        "a Type=notify unit will time out: use Type=simple",
    );
    return inactive;
  }
  let broken = false;
  const send = (lines: string[]) => {
    if (broken) return;
    try {
      sock.send(fd, lines.join("\n"));
    } catch (e) {
      broken = true;
      log.warn(`NOTIFY_SOCKET=${path}: ${e instanceof Error ? e.message : e}; no more notifications`);
    }
  };
  return {
    active: true,
    ready: (status) => send(["READY=1", `STATUS=${oneLine(status)}`, `MAINPID=${process.pid}`]),
    status: (status) => send([`STATUS=${oneLine(status)}`]),
    reloading: (status) =>
      send(["RELOADING=1", `MONOTONIC_USEC=${monotonicUsec()}`, `STATUS=${oneLine(status)}`]),
    stopping: (status) => send(["STOPPING=1", `STATUS=${oneLine(status)}`]),
    close() {
      if (broken) return;
      broken = true;
      sock.close(fd);
    },
  };
}

const nativeIo = (): NotifySocketIo => ({ open: openNotifySocket, send: notifySend, close: closeFd });
