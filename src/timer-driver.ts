/**
 * The one timer of a user netdev: the sans-I/O parts (stack, NAT tables, TFTP) each
 * say when they next have work (`nextDeadline`), and this keeps a single Node timer
 * armed for the earliest of them. When it fires, every part runs its timers, in the
 * order they were added, with one reading of the clock.
 *
 * Theory of operation
 * - `schedule()` runs after every batch of guest frames and every host event that may
 *   have armed a timer; it re-arms only when the earliest deadline moved earlier, so
 *   the common case is a few comparisons and no allocation. A timer that fires early
 *   (a deadline that moved later) just finds less to do and re-arms.
 * - A part without a deadline of its own (idle host forwards) runs whenever the timer
 *   fires for someone else; its work is never late by more than the next deadline.
 * - The timer is unref'd: pending timers never keep the process alive.
 */
import type { Clock } from "./stack/clock.js";

export interface TimedPart {
  /** when `fire` next has work, in clock time; undefined when none is pending */
  nextDeadline?(): number | undefined;
  fire(now: number): void;
}

export class TimerDriver {
  private readonly parts: TimedPart[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(private readonly clock: Clock) {}

  /** Adds a part; it runs after the ones added before it. */
  add(part: TimedPart): void {
    this.parts.push(part);
  }

  /** The earliest deadline of any part, or undefined. */
  nextDeadline(): number | undefined {
    let at: number | undefined;
    // runs after every frame batch and host read: an indexed loop, no array per call
    for (let i = 0; i < this.parts.length; i++) {
      const d = this.parts[i]?.nextDeadline?.();
      if (d !== undefined && (at === undefined || d < at)) at = d;
    }
    return at;
  }

  /** Keeps the timer armed for the earliest deadline. */
  schedule(): void {
    if (this.closed) return;
    const at = this.nextDeadline();
    if (at === undefined || at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - this.clock.now()));
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    const now = this.clock.now();
    for (const p of this.parts) p.fire(now);
    this.schedule();
  }
}
