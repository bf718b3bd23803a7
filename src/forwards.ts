/**
 * The `forwards` facade of a running usernet: port forwards of every user netdev under
 * one id space, added and removed at run time, and runtime ones kept across restarts.
 *
 * Theory of operation
 * - Ids are numbers from 1, never reused (as slirp4netns): the next id is kept in the
 *   state file, so not even a restart hands out an id again. Command-line forwards get
 *   ids at start (after the stored ones); they can be removed at run time too, and come
 *   back from the command line at the next start.
 * - `add` checks the rule (ports, addresses on the netdev's network), refuses one that
 *   would share a host socket with an existing forward ("conflict"), then binds; a bind
 *   that fails ("bind-failed") leaves nothing behind. Errors carry a `reason`.
 * - Runtime forwards are written to `forwards.json` in the state directory (temp file,
 *   fsync, rename) on every add and remove, and reopened at start, after the
 *   command-line ones (which win a conflict: the stored one is then listed with its
 *   error). Stored forwards of a netdev that no longer exists are kept in the file,
 *   inactive, and logged.
 * Without a state directory nothing is persisted.
 */
import type { HostForward } from "./config.js";
import type { Logger } from "./log.js";
import { type ForwardFile, ForwardStore, type StoredForward } from "./proxy/forward-store.js";
import { ipv4ToString, parseIpv4, prefixToMask } from "./stack/wire/addr.js";
import type { ForwardInfo, UserNetdev } from "./user-netdev.js";

export interface ForwardView {
  id: number;
  netdev: string;
  proto: "tcp" | "udp";
  /** the address bound; "0.0.0.0" for every address */
  hostAddr: string;
  hostPort: number;
  /** the guest address (the first DHCP address when the rule left it empty) */
  guestAddr: string;
  guestPort: number;
  preserveSource: boolean;
  bound?: { address: string; port: number };
  error?: string;
}

export type ForwardErrorReason = "invalid" | "conflict" | "bind-failed";

export class ForwardError extends Error {
  constructor(
    readonly reason: ForwardErrorReason,
    message: string,
  ) {
    super(message);
    this.name = "ForwardError";
  }
}

export interface ForwardsFacade {
  list(): ForwardView[];
  add(netdevId: string | undefined, rule: HostForward): Promise<ForwardView>;
  remove(id: number): boolean;
}

const isPort = (v: unknown, min: number): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= 65535;

/** Two rules that would bind the same host socket (port 0 binds a fresh one each time). */
function sameSocket(a: HostForward, b: HostForward): boolean {
  if (a.proto !== b.proto || a.hostPort !== b.hostPort || a.hostPort === 0) return false;
  const any = (s: string) => s === "" || s === "0.0.0.0";
  return a.hostAddr === b.hostAddr || any(a.hostAddr) || any(b.hostAddr);
}

/** Why `rule` cannot be a forward on `nd`, or undefined. */
export function ruleProblem(nd: UserNetdev, rule: HostForward): string | undefined {
  const r = rule as Partial<Record<keyof HostForward, unknown>>;
  if (r.proto !== "tcp" && r.proto !== "udp") return `bad protocol ${JSON.stringify(r.proto)} (tcp or udp)`;
  if (typeof r.hostAddr !== "string" || (r.hostAddr !== "" && parseIpv4(r.hostAddr) === undefined)) {
    return `bad host address ${JSON.stringify(r.hostAddr)}`;
  }
  if (!isPort(r.hostPort, 0)) return `bad host port ${JSON.stringify(r.hostPort)} (0..65535)`;
  if (!isPort(r.guestPort, 1)) return `bad guest port ${JSON.stringify(r.guestPort)} (1..65535)`;
  if (r.preserveSource !== undefined && typeof r.preserveSource !== "boolean") {
    return "preserveSource must be true or false";
  }
  if (typeof r.guestAddr !== "string") return "bad guest address";
  if (r.guestAddr === "") return undefined;
  const g = parseIpv4(r.guestAddr);
  if (g === undefined) return `bad guest address ${JSON.stringify(r.guestAddr)}`;
  const c = nd.config;
  const net = parseIpv4(c.net) ?? 0;
  const mask = prefixToMask(c.prefixLength);
  const where = `${c.net}/${c.prefixLength}`;
  if ((g & mask) >>> 0 !== net) return `guest address ${r.guestAddr} is not inside ${where}`;
  if (g === net || g === (net | ~mask) >>> 0)
    return `guest address ${r.guestAddr} is not a host address of ${where}`;
  if (r.guestAddr === c.host) return `guest address ${r.guestAddr} is the host address`;
  if (r.guestAddr === c.dns) return `guest address ${r.guestAddr} is the DNS address`;
  return undefined;
}

export class Forwards implements ForwardsFacade {
  private nextId: number;
  /** runtime forwards (persisted), by id */
  private readonly runtime = new Map<number, StoredForward>();
  /** stored forwards of netdevs that do not exist now: kept in the file */
  private readonly inactive: StoredForward[] = [];

  private constructor(
    private readonly netdevs: readonly UserNetdev[],
    private readonly store: ForwardStore | undefined,
    loaded: ForwardFile,
  ) {
    this.nextId = loaded.nextId;
  }

  /**
   * Opens the command-line forwards of every user netdev, then the stored runtime
   * ones. Never rejects for a rule that cannot bind (it is listed with its error).
   */
  static async open(
    netdevs: readonly UserNetdev[],
    stateDir: string | undefined,
    log: Logger,
  ): Promise<Forwards> {
    const store = stateDir === undefined ? undefined : new ForwardStore(stateDir, log);
    const loaded = store?.load() ?? { nextId: 1, forwards: [] };
    const f = new Forwards(netdevs, store, loaded);
    for (const nd of netdevs) {
      await nd.forwards.open(nd.config.hostfwd.map((rule) => ({ id: f.nextId++, rule })));
    }
    for (const s of loaded.forwards) {
      const nd = netdevs.find((n) => n.config.id === s.netdev);
      const problem = nd === undefined ? `no user netdev "${s.netdev}"` : ruleProblem(nd, s.rule);
      if (nd === undefined || problem !== undefined) {
        log.warn(`stored forward ${s.id} not restored: ${problem}`, { file: store?.file });
        f.inactive.push(s);
        continue;
      }
      f.runtime.set(s.id, s);
      await nd.forwards.add(s.id, s.rule);
    }
    if (store && loaded.forwards.length > 0) {
      log.info(`restored ${f.runtime.size} runtime forward(s) from ${store.file}`);
    }
    return f;
  }

  list(): ForwardView[] {
    const out: ForwardView[] = [];
    for (const nd of this.netdevs) for (const i of nd.forwards.list()) out.push(this.view(nd, i));
    return out.sort((a, b) => a.id - b.id);
  }

  async add(netdevId: string | undefined, rule: HostForward): Promise<ForwardView> {
    const nd = netdevId === undefined ? this.netdevs[0] : this.netdevs.find((n) => n.config.id === netdevId);
    if (nd === undefined) {
      throw new ForwardError(
        "invalid",
        netdevId === undefined ? "there is no user netdev" : `no user netdev "${netdevId}"`,
      );
    }
    const problem = ruleProblem(nd, rule);
    if (problem) throw new ForwardError("invalid", problem);
    const clean: HostForward = {
      proto: rule.proto,
      hostAddr: rule.hostAddr === "0.0.0.0" ? "" : rule.hostAddr,
      hostPort: rule.hostPort,
      guestAddr: rule.guestAddr,
      guestPort: rule.guestPort,
    };
    if (rule.preserveSource !== undefined) clean.preserveSource = rule.preserveSource;
    for (const n of this.netdevs) {
      for (const i of n.forwards.list()) {
        if (i.error === undefined && sameSocket(i.rule, clean)) {
          throw new ForwardError(
            "conflict",
            `${clean.proto} ${clean.hostAddr || "0.0.0.0"}:${clean.hostPort} is already forwarded (id ${i.id})`,
          );
        }
      }
    }
    const id = this.nextId++;
    const info = await nd.forwards.add(id, clean);
    if (info.error !== undefined) {
      nd.forwards.remove(id);
      // the id is spent all the same: ids are never reused
      await this.save();
      throw new ForwardError("bind-failed", info.error);
    }
    this.runtime.set(id, { id, netdev: nd.config.id, rule: clean });
    // answered once durable (or the write failed: logged, counted, kept in memory)
    await this.save();
    return this.view(nd, info);
  }

  remove(id: number): boolean {
    for (const nd of this.netdevs) {
      if (!nd.forwards.remove(id)) continue;
      // the write never rejects; a kill right after this loses at most this change
      if (this.runtime.delete(id)) void this.save();
      return true;
    }
    return false;
  }

  /** Settles when the state writes started so far are done (for a clean shutdown). */
  flush(): Promise<void> {
    return this.store?.flush() ?? Promise.resolve();
  }

  private async save(): Promise<void> {
    if (!this.store) return;
    const forwards = [...this.runtime.values(), ...this.inactive].sort((a, b) => a.id - b.id);
    await this.store.save({ nextId: this.nextId, forwards });
  }

  private view(nd: UserNetdev, i: ForwardInfo): ForwardView {
    const v: ForwardView = {
      id: i.id,
      netdev: nd.config.id,
      proto: i.rule.proto,
      hostAddr: i.rule.hostAddr || "0.0.0.0",
      hostPort: i.rule.hostPort,
      guestAddr: ipv4ToString(i.guest),
      guestPort: i.rule.guestPort,
      preserveSource: nd.forwards.keepsSource(i.rule),
    };
    if (i.bound) v.bound = { ...i.bound };
    if (i.error !== undefined) v.error = i.error;
    return v;
  }
}
