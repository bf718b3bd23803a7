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
import { readFileSync } from "node:fs";
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

export interface VersionedStateFileOptions {
  log: Logger;
  /** what the file holds, for the log of writes: "DHCP leases" */
  what: string;
  /** the file, for the log of reads: "DHCP lease file" */
  fileName: string;
  /** what the caller does without the file's state: "starting empty" */
  fallback: string;
  /** a check of the body's shape beyond its version (e.g. that a list is a list) */
  shape?: (body: Record<string, unknown>) => boolean;
  fs?: StateFs;
}

/**
 * One state file as `{ "version": N, ...body }` JSON: the way every state file here
 * (DHCP leases, runtime forwards) is read at start and written after a change.
 * - `load` reads it once, synchronously, at start. A missing file is no state
 *   (undefined, quietly). An unreadable file, one that is not JSON, or one of another
 *   version or shape is logged ("FILE is not JSON, FALLBACK") and is no state either:
 *   the caller starts empty rather than refusing to start, and its next save replaces
 *   the file. Checking the entries inside is the caller's job.
 * - `save` writes through a StateWriter (atomic, off the event loop, coalesced).
 */
export class VersionedStateFile {
  private readonly writer: StateWriter;

  constructor(
    readonly file: string,
    readonly version: number,
    private readonly options: VersionedStateFileOptions,
  ) {
    const { log, what, fs } = options;
    this.writer = new StateWriter(file, { log, what, ...(fs ? { fs } : {}) });
  }

  load(): Record<string, unknown> | undefined {
    const { log, fileName, fallback } = this.options;
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
        log.warn(`cannot read ${fileName}, ${fallback}`, { file: this.file, error: String(e) });
      }
      return undefined;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      log.warn(`${fileName} is not JSON, ${fallback}`, { file: this.file });
      return undefined;
    }
    const body = data as Record<string, unknown> | null;
    if (
      typeof body !== "object" ||
      body === null ||
      body.version !== this.version ||
      !(this.options.shape?.(body) ?? true)
    ) {
      log.warn(`${fileName} has an unknown format, ${fallback}`, { file: this.file });
      return undefined;
    }
    return body;
  }

  /** Writes `{ version, ...body }` soon; resolves true once durable, false when that write failed. */
  save(body: Record<string, unknown>): Promise<boolean> {
    return this.writer.update(() => `${JSON.stringify({ version: this.version, ...body }, null, 1)}\n`);
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  failures(): number {
    return this.writer.stats().failures;
  }
}
