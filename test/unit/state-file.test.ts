import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Logger } from "../../src/log.js";
import { type StateFs, StateWriter, VersionedStateFile } from "../../src/state-file.js";

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string) => {
    lines.push(`${level} ${msg}`);
  };
  const log: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => log,
  };
  return { log, lines };
}

/**
 * An fs in memory that records every operation, can hold any operation until released
 * (to see what a write in flight does with new changes) and can fail one kind of op.
 */
class FakeFs implements StateFs {
  readonly files = new Map<string, { text: string; mode: number }>();
  readonly ops: string[] = [];
  /** what the target held after each operation: a crash can happen after any of them */
  readonly targetSeen: (string | undefined)[] = [];
  failOn: string | undefined;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  constructor(private readonly target: string) {}

  hold(): void {
    this.gate = new Promise((r) => {
      this.open = r;
    });
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  private async step(op: string, f: () => void): Promise<void> {
    this.ops.push(op);
    if (this.gate) await this.gate;
    if (this.failOn !== undefined && op.startsWith(this.failOn)) {
      throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
    }
    f();
    this.targetSeen.push(this.files.get(this.target)?.text);
  }

  mkdir(dir: string, mode: number) {
    return this.step(`mkdir ${dir} ${mode.toString(8)}`, () => {});
  }
  writeNew(file: string, text: string, mode: number) {
    return this.step(`writeNew ${file} ${mode.toString(8)}`, () => {
      if (this.files.has(file)) throw new Error("EEXIST");
      this.files.set(file, { text, mode });
    });
  }
  rename(from: string, to: string) {
    return this.step(`rename ${from} ${to}`, () => {
      const f = this.files.get(from);
      if (!f) throw new Error("ENOENT");
      this.files.delete(from);
      this.files.set(to, f);
    });
  }
  syncDir(dir: string) {
    return this.step(`syncDir ${dir}`, () => {});
  }
  remove(file: string) {
    return this.step(`remove ${file}`, () => {
      this.files.delete(file);
    });
  }
}

const file = "/state/leases.json";
const tmp = `${file}.tmp-${process.pid}`;

function setup() {
  const fs = new FakeFs(file);
  const { log, lines } = recordingLog();
  let state = 0;
  const writer = new StateWriter(file, { log, what: "test state", fs });
  const change = () => {
    state++;
    const n = state;
    return writer.update(() => `state ${n}\n`);
  };
  return { fs, lines, writer, change, renders: () => fs.ops.filter((o) => o.startsWith("writeNew")).length };
}

describe("StateWriter", () => {
  it("writes a temp file 0600 in a 0700 directory, then renames it and syncs the directory", async () => {
    const s = setup();
    expect(await s.change()).toBe(true);
    expect(s.fs.ops).toEqual([
      "mkdir /state 700",
      `remove ${tmp}`,
      `writeNew ${tmp} 600`,
      `rename ${tmp} ${file}`,
      "syncDir /state",
    ]);
    expect(s.fs.files.get(file)).toEqual({ text: "state 1\n", mode: 0o600 });
    expect(s.fs.files.has(tmp)).toBe(false);
    expect(s.writer.stats()).toEqual({ changes: 1, writes: 1, failures: 0 });
  });

  it("makes a burst in one turn one write of the latest state", async () => {
    const s = setup();
    const done = Array.from({ length: 100 }, () => s.change());
    expect(s.fs.ops).toEqual([]); // nothing on the caller's turn
    expect(await Promise.all(done)).toEqual(Array(100).fill(true));
    expect(s.renders()).toBe(1);
    expect(s.fs.files.get(file)?.text).toBe("state 100\n");
  });

  it("makes changes during a write one more write, in order, latest last", async () => {
    const s = setup();
    s.fs.hold();
    const first = s.change();
    await new Promise((r) => setImmediate(r));
    expect(s.fs.ops).toEqual(["mkdir /state 700"]); // the first write is in flight
    const later = Array.from({ length: 99 }, () => s.change());
    s.fs.release();
    expect(await first).toBe(true);
    expect(await Promise.all(later)).toEqual(Array(99).fill(true));
    expect(s.renders()).toBe(2);
    expect(s.fs.files.get(file)?.text).toBe("state 100\n");
    // every state the target went through is whole: nothing, the first, the last
    expect([...new Set(s.fs.targetSeen)]).toEqual([undefined, "state 1\n", "state 100\n"]);
  });

  it("resolves a change only once the write holding it has synced the directory", async () => {
    const s = setup();
    let settled = false;
    void s.change().then(() => {
      settled = true;
    });
    s.fs.hold();
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 4; i++) {
      s.fs.release();
      s.fs.hold();
      await new Promise((r) => setImmediate(r));
      expect(settled).toBe(false);
    }
    s.fs.release();
    await s.writer.flush();
    expect(settled).toBe(true);
    expect(s.fs.ops.at(-1)).toBe("syncDir /state");
  });

  it("on a full disk: the old file stays, the temp file goes, logged once, counted, retried on the next change", async () => {
    const s = setup();
    expect(await s.change()).toBe(true);
    s.fs.failOn = "writeNew";
    expect(await s.change()).toBe(false);
    expect(await s.change()).toBe(false);
    expect(s.fs.files.get(file)?.text).toBe("state 1\n");
    expect(s.fs.files.has(tmp)).toBe(false);
    expect(s.lines).toEqual([
      "error cannot save test state; serving from memory, retrying on the next change",
    ]);
    expect(s.writer.stats()).toEqual({ changes: 3, writes: 1, failures: 2 });
    s.fs.failOn = undefined;
    expect(await s.change()).toBe(true);
    expect(s.fs.files.get(file)?.text).toBe("state 4\n");
    expect(s.lines.at(-1)).toBe("info test state saved again");
  });

  it("a failed rename leaves the old file whole", async () => {
    const s = setup();
    await s.change();
    s.fs.failOn = "rename";
    expect(await s.change()).toBe(false);
    expect(s.fs.files.get(file)?.text).toBe("state 1\n");
    expect(s.fs.files.has(tmp)).toBe(false);
    expect(s.fs.targetSeen.every((t) => t === undefined || t === "state 1\n")).toBe(true);
  });

  it("a directory that refuses fsync does not fail the write", async () => {
    const s = setup();
    s.fs.failOn = "syncDir";
    expect(await s.change()).toBe(true);
    expect(s.writer.stats().failures).toBe(0);
  });

  it("a render that throws is a failed write, and the writer goes on", async () => {
    const s = setup();
    expect(await s.writer.update(() => JSON.stringify({ n: 1n }))).toBe(false);
    expect(await s.change()).toBe(true);
    expect(s.writer.stats()).toMatchObject({ writes: 1, failures: 1 });
  });

  it("writes real files: 0600, in a created 0700 directory, no temp file left", async () => {
    const root = mkdtempSync(join(tmpdir(), "usernet-state-"));
    try {
      const dir = join(root, "state");
      const { log } = recordingLog();
      const w = new StateWriter(join(dir, "s.json"), { log, what: "s" });
      const all = Array.from({ length: 50 }, (_, i) => w.update(() => `${i}\n`));
      expect(await Promise.all(all)).toEqual(Array(50).fill(true));
      expect(readFileSync(join(dir, "s.json"), "utf8")).toBe("49\n");
      expect(statSync(join(dir, "s.json")).mode & 0o777).toBe(0o600);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(readdirSync(dir)).toEqual(["s.json"]);
      expect(w.stats().writes).toBe(1);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("VersionedStateFile", () => {
  it("is quiet about a missing file, warns about a corrupt, foreign or misshapen one, and reads back what it saved", async () => {
    const root = mkdtempSync(join(tmpdir(), "usernet-state-"));
    try {
      const file = join(root, "x.json");
      const { log, lines } = recordingLog();
      const f = new VersionedStateFile(file, 2, {
        log,
        what: "x",
        fileName: "the x file",
        fallback: "starting empty",
        shape: (b) => Array.isArray(b.items),
      });
      expect(f.load()).toBeUndefined();
      expect(lines).toEqual([]);
      for (const text of [
        '{"version": 2, "items": [',
        '{"version": 1, "items": []}',
        '{"version": 2}',
        "null",
      ]) {
        writeFileSync(file, text);
        expect(f.load()).toBeUndefined();
      }
      expect(lines).toEqual([
        "warn the x file is not JSON, starting empty",
        "warn the x file has an unknown format, starting empty",
        "warn the x file has an unknown format, starting empty",
        "warn the x file has an unknown format, starting empty",
      ]);
      expect(await f.save({ items: [1, 2] })).toBe(true);
      expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ version: 2, items: [1, 2] });
      expect(f.load()).toEqual({ version: 2, items: [1, 2] });
      expect(f.failures()).toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
