/**
 * State that must survive a restart (DHCP leases, runtime forwards), written atomically
 * and off the event loop.
 *
 * Theory of operation
 * - One `StateWriter` per file. `update(render)` says "the state changed"; it returns at
 *   once. The write happens later, on libuv's thread pool (node:fs/promises), never on
 *   the event loop: a guest renewing its lease in a loop cannot stall other guests on
 *   fsync. `render` is called when the write starts, so it serialises the latest state.
 * - Coalescing: at most one write runs per file. Changes made while it runs are
 *   written together by one more write after it; changes made in one turn of the event
 *   loop are one write (the first write waits for setImmediate). A burst of 100 DHCP
 *   ACKs is one or two writes.
 * - Atomic: the text goes to a fresh temp file next to the target (created exclusively,
 *   mode 0600), which is fsynced, renamed over the target, and the directory (created
 *   0700) fsynced so the rename itself is durable. A crash (kill -9, power loss) leaves
 *   the old file or the new one, never a torn one, and loses at most the changes not yet
 *   written: those of the write in flight and the ones queued behind it.
 * - Failures (a full disk, a read-only or removed directory, EIO): the temp file is
 *   removed, the failure is logged once (and again only after a success), counted (here
 *   and as a host fault "state-write" with its errno, log.ts), and the caller keeps
 *   serving from memory; the file keeps the last good state. Nothing retries on a timer: the next change
 *   writes the whole state again.
 * - `update` resolves when a write that includes that change is durable (true) or has
 *   failed (false); it never rejects. `flush` waits for everything asked so far.
 * Not done: locking against a second process using the same file.
 */
import * as fsp from "node:fs/promises";
import path from "node:path";
import { hostFaults, type Logger } from "./log.js";

/** The file operations a StateWriter needs; injected in tests. */
export interface StateFs {
  /** mkdir -p with `mode` for what it creates */
  mkdir(dir: string, mode: number): Promise<void>;
  /** creates `file` exclusively with `mode`, writes `text`, fsyncs and closes it */
  writeNew(file: string, text: string, mode: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** fsync of a directory; may fail where a filesystem refuses it */
  syncDir(dir: string): Promise<void>;
  /** rm -f */
  remove(file: string): Promise<void>;
}

export const nodeStateFs: StateFs = {
  async mkdir(dir, mode) {
    await fsp.mkdir(dir, { recursive: true, mode });
  },
  async writeNew(file, text, mode) {
    const h = await fsp.open(file, "wx", mode);
    try {
      await h.writeFile(text);
      await h.sync();
    } finally {
      await h.close();
    }
  },
  rename: (from, to) => fsp.rename(from, to),
  async syncDir(dir) {
    const h = await fsp.open(dir, "r");
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  },
  remove: (file) => fsp.rm(file, { force: true }),
};

export interface StateWriterStats {
  /** changes asked for with update() */
  changes: number;
  /** writes that reached the disk */
  writes: number;
  /** writes that failed */
  failures: number;
}

export interface StateWriterOptions {
  log: Logger;
  /** what the file holds, for the log: "DHCP leases" */
  what: string;
  fs?: StateFs;
  /** the turn to wait before a first write, so a burst coalesces; setImmediate by default */
  defer?: () => Promise<void>;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class StateWriter {
  private pending: (() => string) | undefined;
  private waiters: ((ok: boolean) => void)[] = [];
  private running: Promise<void> | undefined;
  private failing = false;
  private readonly fs: StateFs;
  private readonly counts: StateWriterStats = { changes: 0, writes: 0, failures: 0 };

  constructor(
    readonly file: string,
    private readonly options: StateWriterOptions,
  ) {
    this.fs = options.fs ?? nodeStateFs;
  }

  /** The state changed: write what `render` returns soon. Resolves true once durable, false on failure. */
  update(render: () => string): Promise<boolean> {
    this.pending = render;
    this.counts.changes++;
    const done = new Promise<boolean>((resolve) => this.waiters.push(resolve));
    this.running ??= this.drain();
    return done;
  }

  /** Settles when every change asked for so far is written (or has failed). */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  stats(): StateWriterStats {
    return { ...this.counts };
  }

  private async drain(): Promise<void> {
    await (this.options.defer ?? nextTurn)();
    for (;;) {
      const render = this.pending;
      if (render === undefined) break;
      const waiters = this.waiters;
      this.pending = undefined;
      this.waiters = [];
      const ok = await this.writeOnce(render);
      for (const w of waiters) w(ok);
    }
    this.running = undefined;
  }

  private async writeOnce(render: () => string): Promise<boolean> {
    const dir = path.dirname(this.file);
    const tmp = `${this.file}.tmp-${process.pid}`;
    try {
      const text = render();
      await this.fs.mkdir(dir, 0o700);
      await this.fs.remove(tmp);
      await this.fs.writeNew(tmp, text, 0o600);
      await this.fs.rename(tmp, this.file);
    } catch (e) {
      await this.fs.remove(tmp).catch(() => undefined);
      this.counts.failures++;
      hostFaults.count("state-write", (e as NodeJS.ErrnoException).code ?? "EIO");
      if (!this.failing) {
        this.failing = true;
        this.options.log.error(
          `cannot save ${this.options.what}; serving from memory, retrying on the next change`,
          {
            file: this.file,
            error: String(e),
          },
        );
      }
      return false;
    }
    // some filesystems refuse fsync on a directory; the rename is then as durable as they allow
    await this.fs.syncDir(dir).catch(() => undefined);
    this.counts.writes++;
    if (this.failing) {
      this.failing = false;
      this.options.log.info(`${this.options.what} saved again`, { file: this.file });
    }
    return true;
  }
}
