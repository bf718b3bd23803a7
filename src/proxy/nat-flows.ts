/**
 * The flow tables of the NAT proxies: TCP (tcp-relay.ts), UDP (udp-nat.ts) and ICMP
 * echo (icmp-echo.ts) keep their flows here, so that what a flow's life in a table means
 * (registered, still the live one for its key, listed with its age, removed once) is
 * written once.
 *
 * `NatFlows` is the plain table: a Map from the flow's key to the flow. A flow that was
 * closed or replaced is no longer `holds`: late host events for it are to be ignored.
 *
 * `IdleNatFlows` adds what the socket-per-flow NATs (UDP, ICMP) need: the Map's
 * insertion order is the order of last activity (`touch` moves a flow to the back), so
 * the least recently active flow is always first. That one fact gives the idle deadline
 * (the first flow's), expiry (walk from the front until a flow is still fresh) and LRU
 * eviction (the front) in O(1) per step. It also counts flows per guest for
 * `maxFlowsPerGuest` (the guest a flow counts against is the caller's `guestOf`, see
 * stack/guest-bounds.ts): a guest at its bound gets no new flow, and a new flow in a
 * full table first evicts the least recently active one, whoever's it is. The TCP relay
 * needs neither: the stack's flow table bounds its connections.
 */
import { GuestCounts } from "../stack/guest-bounds.js";

export interface NatFlow<K> {
  readonly key: K;
  /** when the flow was made (ms), for its age in listings */
  readonly created: number;
}

export class NatFlows<K, F extends NatFlow<K>> {
  protected readonly flows = new Map<K, F>();

  get size(): number {
    return this.flows.size;
  }

  /** The live flow for `key`. */
  get(key: K): F | undefined {
    return this.flows.get(key);
  }

  /** Whether `flow` is still the live one for its key (late events of closed flows are not). */
  holds(flow: F): boolean {
    return this.flows.get(flow.key) === flow;
  }

  add(flow: F): void {
    this.flows.set(flow.key, flow);
  }

  /** Removes `flow` if it is the live one for its key; true when it was. */
  delete(flow: F): boolean {
    if (!this.holds(flow)) return false;
    this.flows.delete(flow.key);
    return true;
  }

  values(): IterableIterator<F> {
    return this.flows.values();
  }

  /** Every flow as `describe` shows it, given the flow's age at `now`. */
  list<T>(now: number, describe: (flow: F, ageMs: number) => T): T[] {
    const out: T[] = [];
    for (const f of this.flows.values()) out.push(describe(f, now - f.created));
    return out;
  }
}

export interface IdleNatFlow extends NatFlow<string> {
  /** who the flow counts against for the per-guest bound */
  readonly guest: number;
  lastActive: number;
}

export interface IdleNatFlowsOptions {
  idleTimeoutMs: number;
  /** flows in all: a new one past this evicts the least recently active */
  maxFlows: number;
  /** flows of one guest (at most maxFlows): a new one past this is refused */
  maxFlowsPerGuest: number;
}

export class IdleNatFlows<F extends IdleNatFlow> extends NatFlows<string, F> {
  readonly idleTimeoutMs: number;
  private readonly perGuest: GuestCounts;

  constructor(o: IdleNatFlowsOptions) {
    super();
    this.idleTimeoutMs = o.idleTimeoutMs;
    this.perGuest = new GuestCounts({ max: o.maxFlows, perGuest: Math.min(o.maxFlows, o.maxFlowsPerGuest) });
  }

  /** The bounds in force: flows in all and per guest. */
  get limits(): { maxFlows: number; maxFlowsPerGuest: number } {
    return { maxFlows: this.perGuest.bounds.max, maxFlowsPerGuest: this.perGuest.bounds.perGuest };
  }

  /** The live flow for `key`, marked active now (moved to the back). */
  touch(key: string, now: number): F | undefined {
    const f = this.flows.get(key);
    if (f === undefined) return undefined;
    f.lastActive = now;
    this.flows.delete(key);
    this.flows.set(key, f);
    return f;
  }

  /**
   * Whether `guest` may have one more flow; when it may and the table is full, `evict`
   * is given the least recently active flow to close (which must `delete` it) first.
   */
  room(guest: number, evict: (oldest: F) => void): boolean {
    if (this.perGuest.over(guest) === "per-guest") return false;
    if (this.flows.size >= this.perGuest.bounds.max) {
      const oldest = this.flows.values().next().value;
      if (oldest !== undefined) evict(oldest);
    }
    return true;
  }

  override add(flow: F): void {
    const replaced = this.flows.get(flow.key);
    if (replaced !== undefined) this.perGuest.release(replaced.guest);
    super.add(flow);
    this.perGuest.take(flow.guest);
  }

  override delete(flow: F): boolean {
    if (!super.delete(flow)) return false;
    this.perGuest.release(flow.guest);
    return true;
  }

  /** When the least recently active flow goes idle. */
  nextDeadline(): number | undefined {
    const oldest = this.flows.values().next().value;
    return oldest === undefined ? undefined : oldest.lastActive + this.idleTimeoutMs;
  }

  /** The flows idle past the timeout at `now`, oldest first (the caller closes them). */
  idle(now: number): F[] {
    const out: F[] = [];
    for (const f of this.flows.values()) {
      if (f.lastActive + this.idleTimeoutMs > now) break;
      out.push(f);
    }
    return out;
  }
}
