/**
 * The last lines of the log, for the dashboard's log pane: a ring of at most `max`
 * lines (default 500) fed by wrapping the stream the logger writes to, and subscribers
 * told of each new line as it is written. Bounded in lines and in line length (4 KiB;
 * longer ones are cut), so a chatty log cannot grow memory.
 */
export interface LogTailSource {
  lines(): string[];
  /** calls `fn` with each line written from now on; returns the unsubscribe function */
  subscribe(fn: (line: string) => void): () => void;
}

export class LogTail implements LogTailSource {
  private readonly ring: string[] = [];
  private readonly subscribers = new Set<(line: string) => void>();
  private partial = "";

  constructor(private readonly max = 500) {}

  /** A stream that writes to `out` and keeps what it wrote. */
  tee(out: { write(s: string): unknown }): { write(s: string): boolean } {
    return {
      write: (s: string) => {
        out.write(s);
        this.push(s);
        return true;
      },
    };
  }

  push(text: string): void {
    const parts = (this.partial + text).split("\n");
    this.partial = (parts.pop() ?? "").slice(0, 4096);
    for (const p of parts) {
      const line = p.slice(0, 4096);
      this.ring.push(line);
      if (this.ring.length > this.max) this.ring.shift();
      for (const fn of this.subscribers) fn(line);
    }
  }

  lines(): string[] {
    return [...this.ring];
  }

  subscribe(fn: (line: string) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}
