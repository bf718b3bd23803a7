import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../../../src/log.js";
import { ForwardStore, parseStoredRule } from "../../../src/proxy/forward-store.js";

const warnings: string[] = [];
const log: Logger = {
  debug() {},
  info() {},
  warn: (m) => warnings.push(m),
  error: (m) => warnings.push(m),
  child: () => log,
};

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  warnings.length = 0;
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "usernet-store-"));
  dirs.push(d);
  return d;
};

const arbRule = fc.record(
  {
    proto: fc.constantFrom("tcp" as const, "udp" as const),
    hostAddr: fc.constantFrom("", "127.0.0.1", "0.0.0.0"),
    hostPort: fc.integer({ min: 0, max: 65535 }),
    guestAddr: fc.constantFrom("", "10.0.2.15", "10.0.2.100"),
    guestPort: fc.integer({ min: 1, max: 65535 }),
    preserveSource: fc.boolean(),
  },
  { requiredKeys: ["proto", "hostAddr", "hostPort", "guestAddr", "guestPort"] },
);

describe("ForwardStore", () => {
  test.prop(
    [
      fc.uniqueArray(fc.record({ id: fc.integer({ min: 1, max: 1000 }), rule: arbRule }), {
        selector: (e) => e.id,
        maxLength: 8,
      }),
    ],
    {
      numRuns: 30,
    },
  )("what is saved loads back, and nextId stays past every id", async (entries) => {
    const s = new ForwardStore(tempDir(), log);
    const forwards = entries.map((e) => ({ id: e.id, netdev: "u0", rule: e.rule }));
    expect(await s.save({ nextId: 3, forwards })).toBe(true);
    const back = s.load();
    expect(back.forwards).toEqual(forwards);
    expect(back.nextId).toBe(Math.max(3, ...entries.map((e) => e.id + 1)));
  });

  it("a missing file is empty; the file is private and no temp file is left", async () => {
    const dir = join(tempDir(), "state");
    const s = new ForwardStore(dir, log);
    expect(s.load()).toEqual({ nextId: 1, forwards: [] });
    expect(warnings).toEqual([]);
    expect(await s.save({ nextId: 2, forwards: [] })).toBe(true);
    expect(statSync(s.file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir)).toEqual(["forwards.json"]);
    expect(JSON.parse(readFileSync(s.file, "utf8"))).toEqual({ version: 1, nextId: 2, forwards: [] });
  });

  it("a corrupt file or a wrong version starts empty, with a warning", () => {
    const dir = tempDir();
    const s = new ForwardStore(dir, log);
    writeFileSync(s.file, "{");
    expect(s.load().forwards).toEqual([]);
    writeFileSync(s.file, JSON.stringify({ version: 9, forwards: [] }));
    expect(s.load().forwards).toEqual([]);
    expect(warnings.length).toBe(2);
  });

  it("malformed entries and duplicate ids are skipped, the rest kept", () => {
    const dir = tempDir();
    const s = new ForwardStore(dir, log);
    const good = { proto: "tcp", hostAddr: "", hostPort: 8080, guestAddr: "", guestPort: 80 };
    writeFileSync(
      s.file,
      JSON.stringify({
        version: 1,
        nextId: 2,
        forwards: [
          { id: 7, netdev: "u0", rule: good },
          { id: 7, netdev: "u0", rule: good },
          { id: 8, netdev: "u0", rule: { ...good, hostPort: 70000 } },
          { id: 9, netdev: "", rule: good },
          { id: 0, netdev: "u0", rule: good },
          null,
        ],
      }),
    );
    const back = s.load();
    expect(back.forwards).toEqual([{ id: 7, netdev: "u0", rule: good }]);
    expect(back.nextId).toBe(8);
    expect(warnings).toHaveLength(1);
  });

  it("a failing save is reported, not thrown", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "file"), "");
    const s = new ForwardStore(join(dir, "file"), log);
    expect(await s.save({ nextId: 1, forwards: [] })).toBe(false);
    expect(s.failures()).toBe(1);
    expect(warnings).toHaveLength(1);
  });

  it("parseStoredRule refuses wrong fields", () => {
    const good = { proto: "udp", hostAddr: "127.0.0.1", hostPort: 0, guestAddr: "10.0.2.15", guestPort: 1 };
    expect(parseStoredRule(good)).toEqual(good);
    for (const bad of [
      { ...good, proto: "sctp" },
      { ...good, hostAddr: "localhost" },
      { ...good, guestPort: 0 },
      { ...good, hostPort: 1.5 },
      { ...good, preserveSource: "yes" },
      "tcp",
    ]) {
      expect(parseStoredRule(bad)).toBeUndefined();
    }
  });
});
