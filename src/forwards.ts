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
 *   fsync, rename) on every add and remove, and the caller is answered only once that
 *   write is durable: a `kill -9` then never loses a change the caller was told of. A
 *   write that fails (a full disk) undoes the change and rejects with
 *   "state-write-failed", so memory and disk agree. They are reopened at start, after the
 *   command-line ones (which win a conflict: the stored one is then listed with its
 *   error). Stored forwards of a netdev that no longer exists are kept in the file,
 *   inactive, and logged.
 * Without a state directory nothing is persisted.
 */
import type { HostForward } from "./config.js";
import { checkHostForward, guestAddressProblem } from "./forward-rule.js";
import type { Logger } from "./log.js";
import { type ForwardFile, ForwardStore, type StoredForward } from "./proxy/forward-store.js";
import { ipToString } from "./stack/wire/ipv6-addr.js";
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

export type ForwardErrorReason = "invalid" | "conflict" | "bind-failed" | "state-write-failed";

const stateWriteFailed =
  "the state directory could not be written (see the log); the forwards are as they were";

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
  /** false when there is no such forward */
  remove(id: number): Promise<boolean>;
}

/** Two rules that would bind the same host socket (port 0 binds a fresh one each time). */
function sameSocket(a: HostForward, b: HostForward): boolean {
  if (a.proto !== b.proto || a.hostPort !== b.hostPort || a.hostPort === 0) return false;
  const any = (s: string) => s === "" || s === "0.0.0.0";
  return a.hostAddr === b.hostAddr || any(a.hostAddr) || any(b.hostAddr);
}

/** `rule` checked (forward-rule.ts) as a forward on `nd`: the clean rule, or why not. */
export function checkRule(
  nd: UserNetdev,
  rule: unknown,
): { ok: true; value: HostForward } | { ok: false; reason: string } {
  const r = checkHostForward(rule);
  if (!r.ok) return r;
  const problem = guestAddressProblem(nd.config, r.value.guestAddr);
  return problem === undefined ? r : { ok: false, reason: problem };
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
      const checked = nd === undefined ? undefined : checkRule(nd, s.rule);
      if (nd === undefined || !checked?.ok) {
        const problem = checked?.ok === false ? checked.reason : `no user netdev "${s.netdev}"`;
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
    const checked = checkRule(nd, rule);
    if (!checked.ok) throw new ForwardError("invalid", checked.reason);
    const clean = checked.value;
    if (clean.hostAddr === "0.0.0.0") clean.hostAddr = "";
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
    // answered once durable: a forward the caller was told about survives a kill -9
    if (!(await this.save())) {
      this.runtime.delete(id);
      nd.forwards.remove(id);
      throw new ForwardError("state-write-failed", stateWriteFailed);
    }
    return this.view(nd, info);
  }

  async remove(id: number): Promise<boolean> {
    const nd = this.netdevs.find((n) => n.forwards.list().some((i) => i.id === id));
    if (nd === undefined) return false;
    const stored = this.runtime.get(id);
    if (stored !== undefined) {
      // durable first, then gone: a failed write leaves the forward in place, as on disk
      this.runtime.delete(id);
      if (!(await this.save())) {
        this.runtime.set(id, stored);
        throw new ForwardError("state-write-failed", stateWriteFailed);
      }
    }
    return nd.forwards.remove(id);
  }

  /**
   * A config reload (SIGHUP): makes the configured (not runtime) forwards of netdev
   * `netdevId` the rules `rules` says. A rule already open stays as it is (with its id
   * and its connections); one the file no longer has is closed (its accepted
   * connections stay, as with `remove`); a new one gets a new id and is bound (an error
   * is listed and logged, as at start); one that could not bind before is tried again.
   * Nothing is written to the state directory: configured forwards come from the file.
   */
  async reconcileConfigured(
    netdevId: string,
    rules: readonly HostForward[],
  ): Promise<{ added: ForwardView[]; removed: ForwardView[] }> {
    const nd = this.netdevs.find((n) => n.config.id === netdevId);
    if (nd === undefined) return { added: [], removed: [] };
    const key = (r: HostForward) =>
      [
        r.proto,
        r.hostAddr === "0.0.0.0" ? "" : r.hostAddr,
        r.hostPort,
        r.guestAddr,
        r.guestPort,
        r.preserveSource,
      ].join("|");
    const want = new Map<string, HostForward>();
    for (const r of rules) want.set(key(r), r);
    const removed: ForwardView[] = [];
    for (const i of nd.forwards.list()) {
      if (this.runtime.has(i.id)) continue;
      const k = key(i.rule);
      if (want.has(k) && i.error === undefined) {
        want.delete(k);
        continue;
      }
      removed.push(this.view(nd, i));
      nd.forwards.remove(i.id);
    }
    const added: ForwardView[] = [];
    for (const r of want.values()) added.push(this.view(nd, await nd.forwards.add(this.nextId++, r)));
    return { added, removed };
  }

  /** Settles when the state writes started so far are done (for a clean shutdown). */
  flush(): Promise<void> {
    return this.store?.flush() ?? Promise.resolve();
  }

  /** true once the runtime forwards as they are now are durable (or nothing is persisted) */
  private async save(): Promise<boolean> {
    if (!this.store) return true;
    const forwards = [...this.runtime.values(), ...this.inactive].sort((a, b) => a.id - b.id);
    return this.store.save({ nextId: this.nextId, forwards });
  }

  private view(nd: UserNetdev, i: ForwardInfo): ForwardView {
    const v: ForwardView = {
      id: i.id,
      netdev: nd.config.id,
      proto: i.rule.proto,
      hostAddr: i.rule.hostAddr || "0.0.0.0",
      hostPort: i.rule.hostPort,
      // an IPv6 rule with no guest address and no guest learned yet: ""
      guestAddr: i.guest === undefined ? "" : ipToString(i.guest),
      guestPort: i.rule.guestPort,
      preserveSource: nd.forwards.keepsSource(i.rule),
    };
    if (i.bound) v.bound = { ...i.bound };
    if (i.error !== undefined) v.error = i.error;
    return v;
  }
}
