/**
 * Flows kept in idle order: a Map whose insertion order is the order of last
 * activity, so the least recently active flow is always first. That one fact gives
 * the idle deadline (the first flow's), expiry (walk from the front until a flow is
 * still fresh) and LRU eviction (the front) in O(1) per step. The UDP and ICMP NATs
 * each keep their flows here.
 */
export interface IdleFlow {
  readonly key: string;
  lastActive: number;
}

export class IdleFlows<F extends IdleFlow> {
  private readonly flows = new Map<string, F>();

  constructor(
    readonly idleTimeoutMs: number,
    readonly maxFlows: number,
  ) {}

  get size(): number {
    return this.flows.size;
  }

  /** The live flow for `key`, its place in the idle order unchanged. */
  get(key: string): F | undefined {
    return this.flows.get(key);
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

  /** Whether `flow` is still the live one for its key (late events of closed flows are not). */
  holds(flow: F): boolean {
    return this.flows.get(flow.key) === flow;
  }

  /** The least recently active flow when the table is full: the one to evict before adding. */
  victim(): F | undefined {
    return this.flows.size >= this.maxFlows ? this.flows.values().next().value : undefined;
  }

  add(flow: F): void {
    this.flows.set(flow.key, flow);
  }

  delete(flow: F): void {
    if (this.holds(flow)) this.flows.delete(flow.key);
  }

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

  values(): IterableIterator<F> {
    return this.flows.values();
  }
}
