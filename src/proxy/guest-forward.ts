/**
 * Guest-to-host forwards (`guestfwd=`): a guest's TCP connection to a virtual
 * SERVER:PORT goes to a host TCP socket (`tcp:HOST:PORT`) or to a new process per
 * connection (`cmd:COMMAND`, run as `sh -c COMMAND`, its stdin and stdout carrying the
 * stream, its stderr logged line by line).
 *
 * Theory of operation
 * - The mechanics are the TCP relay's own (windows, backpressure, half-close, RST):
 *   this module gives a relay of its own a HostNet whose `connectTcp` opens the
 *   guestfwd target instead of the address the guest dialled. The guest gets its
 *   SYN-ACK only once the target is up (connected, or the process spawned); a target
 *   that refuses or a command that cannot start resets the guest.
 * - A command: guest bytes go to its stdin, stdout goes to the guest; guest FIN closes
 *   stdin; the end of stdout is the FIN to the guest. A reset (guest RST, or the
 *   connection torn down before stdout ended) sends SIGTERM to the command's process
 *   group (it runs in its own), then SIGKILL after 2 s.
 *   Bytes the guest sends after the command closed its stdin are dropped (counted in
 *   the log at debug level), as a closed pipe would.
 * - restrict=on does not apply: a guestfwd is what the administrator allowed.
 * Limits: at most `maxCommands` (64) processes at once; a connection past that is
 * refused. The relay's bounds apply to the streams. stderr lines are cut at 1,000
 * characters.
 * Not done: QEMU's other chardev targets (a guestfwd takes any chardev in QEMU).
 */
import { spawn } from "node:child_process";
import type { GuestForward } from "../config.js";
import type { Logger } from "../log.js";
import type { TcpEvent } from "../stack/tcp/tcp-endpoint.js";
import { ipv4ToString, parseIpv4 } from "../stack/wire/addr.js";
import type { HostNet, HostTcp, HostTcpEvent } from "./host-net.js";
import { NatPolicy } from "./nat-policy.js";
import { type GuestTcp, TcpRelay } from "./tcp-relay.js";

export interface GuestForwarderOptions {
  /** the gateway address (the relay's policy needs one; guestfwd servers are never it) */
  gateway: number;
  /** where `tcp:` targets are connected */
  hostNet: HostNet;
  log: Logger;
  now(): number;
  maxCommands?: number;
  connectTimeoutMs?: number;
}

const killGraceMs = 2_000;
const maxStderrLine = 1_000;

export class GuestForwarder {
  readonly relay: TcpRelay;
  private readonly targets = new Map<string, GuestForward>();
  private readonly log: Logger;
  private running = 0;
  private readonly maxCommands: number;

  constructor(
    rules: readonly GuestForward[],
    private readonly opts: GuestForwarderOptions,
  ) {
    this.log = opts.log;
    this.maxCommands = opts.maxCommands ?? 64;
    for (const r of rules) {
      const a = parseIpv4(r.server);
      if (a !== undefined) this.targets.set(`${ipv4ToString(a)}:${r.port}`, r);
    }
    const hostNet: HostNet = {
      connectTcp: (to, _local, timeoutMs, events) => this.open(to.address, to.port, timeoutMs, events),
      openPing: () => {
        throw new Error("guestfwd relays TCP only");
      },
      bindUdp: () => {
        throw new Error("guestfwd relays TCP only");
      },
    };
    const policy = new NatPolicy({ host: opts.gateway, hostLoopback: true, restrict: false });
    this.relay = new TcpRelay(hostNet, policy, opts.log, opts.now, {
      connectTimeoutMs: opts.connectTimeoutMs ?? 30_000,
    });
  }

  get size(): number {
    return this.targets.size;
  }

  /** Whether guest TCP to `server:port` is a guestfwd. */
  owns(server: number, port: number): boolean {
    return this.targets.size > 0 && this.targets.has(`${ipv4ToString(server)}:${port}`);
  }

  event(conn: GuestTcp, ev: TcpEvent): void {
    this.relay.event(conn, ev);
  }

  closeAll(): void {
    this.relay.closeAll();
  }

  private open(server: string, port: number, timeoutMs: number, events: (e: HostTcpEvent) => void): HostTcp {
    const t = this.targets.get(`${server}:${port}`);
    if (t === undefined) return failed("ECONNREFUSED", events);
    if (t.target.kind === "tcp") {
      return this.opts.hostNet.connectTcp(
        { address: t.target.host, port: t.target.port },
        undefined,
        timeoutMs,
        events,
      );
    }
    if (this.running >= this.maxCommands) {
      this.log.warn("guestfwd: too many commands running, connection refused", { limit: this.maxCommands });
      return failed("EAGAIN", events);
    }
    this.running++;
    let done = false;
    return commandAsHostTcp(t.target.command, this.log, events, () => {
      if (done) return;
      done = true;
      this.running--;
    });
  }
}

/** A HostTcp that reports a failed connect on the next tick and does nothing else. */
function failed(code: string, events: (e: HostTcpEvent) => void): HostTcp {
  setImmediate(() => events({ type: "connect-failed", code }));
  return { write() {}, end() {}, reset() {}, pause() {}, resume() {} };
}

/**
 * Runs `sh -c command` and presents its stdio as a HostTcp: "connected" once it has
 * spawned, stdout as data and end, "closed" when it has exited and its pipes are shut.
 */
export function commandAsHostTcp(
  command: string,
  log: Logger,
  events: (e: HostTcpEvent) => void,
  onExit: () => void = () => {},
): HostTcp {
  // its own process group, so a reset reaches the whole pipeline, not just the shell
  const child = spawn("sh", ["-c", command], { stdio: ["pipe", "pipe", "pipe"], detached: true });
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      // the group is gone already
    }
  };
  let spawned = false;
  let exited = false;
  let stdinOpen = true;
  let dropped = 0;
  let killTimer: NodeJS.Timeout | undefined;
  const clog = log.child({ guestfwd: command.length > 60 ? `${command.slice(0, 57)}...` : command });

  child.once("spawn", () => {
    spawned = true;
    clog.debug("command started", { pid: child.pid });
    events({ type: "connected" });
  });
  child.once("error", (err: NodeJS.ErrnoException) => {
    const code = err.code ?? "EIO";
    if (!spawned) {
      exited = true;
      onExit();
      events({ type: "connect-failed", code });
    } else {
      clog.warn("command error", { error: err.message });
    }
  });
  child.stdout.on("data", (data: Buffer) => events({ type: "data", data }));
  child.stdout.on("end", () => events({ type: "end" }));
  child.stdin.on("error", (err: NodeJS.ErrnoException) => {
    // EPIPE: the command stopped reading; what the guest sends from now on is dropped
    stdinOpen = false;
    clog.debug("command stdin closed", { code: err.code });
  });
  let partial = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (s: string) => {
    partial += s;
    let nl = partial.indexOf("\n");
    while (nl >= 0) {
      clog.info(`stderr: ${partial.slice(0, Math.min(nl, maxStderrLine))}`);
      partial = partial.slice(nl + 1);
      nl = partial.indexOf("\n");
    }
    if (partial.length > maxStderrLine) {
      clog.info(`stderr: ${partial.slice(0, maxStderrLine)}`);
      partial = "";
    }
  });
  child.once("close", (code, signal) => {
    if (partial !== "") clog.info(`stderr: ${partial.slice(0, maxStderrLine)}`);
    if (killTimer) clearTimeout(killTimer);
    if (dropped > 0) clog.debug("guest bytes dropped after the command closed its input", { bytes: dropped });
    clog.debug("command exited", { code, signal });
    const wasSpawned = spawned;
    if (!exited) {
      exited = true;
      onExit();
    }
    if (wasSpawned) events({ type: "closed" });
  });

  return {
    write(data, done) {
      if (!stdinOpen || child.stdin.destroyed || child.stdin.writableEnded) {
        dropped += data.length;
        done();
        return;
      }
      child.stdin.write(data, () => done());
    },
    end() {
      if (!child.stdin.writableEnded) child.stdin.end();
    },
    reset() {
      if (exited || killTimer !== undefined) return;
      signal("SIGTERM");
      killTimer = setTimeout(() => signal("SIGKILL"), killGraceMs);
      killTimer.unref();
    },
    pause() {
      child.stdout.pause();
    },
    resume() {
      child.stdout.resume();
    },
  };
}
