import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import type { Logger } from "../../../../src/log.js";
import type { Lease } from "../../../../src/services/dhcp/dhcp-lease.js";
import { FileLeaseStore, LEASE_FILE_VERSION } from "../../../../src/services/dhcp/dhcp-lease-file.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "usernet-leases-"));
  dirs.push(d);
  return d;
}

function logger(lines: string[]): Logger {
  const at = (level: string) => (msg: string) => {
    lines.push(`${level} ${msg}`);
  };
  const l: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => l,
  };
  return l;
}

const leases: Lease[] = [
  { mac: "52:54:00:12:34:56", ip: "10.0.2.15", state: "bound", expiresAt: 86_400_000, hostname: "vm1" },
  { mac: "52:54:00:12:34:57", clientId: "01525400123457", ip: "10.0.2.16", state: "released", expiresAt: 5 },
  { mac: "52:54:00:12:34:58", ip: "10.0.2.17", state: "bootp", expiresAt: 0 },
];

describe("FileLeaseStore", () => {
  test("saves and loads back, creating the state directory", async () => {
    const dir = path.join(tempDir(), "state", "n0");
    const log: string[] = [];
    const store = new FileLeaseStore(dir, "dhcp-leases.json", logger(log));
    expect(store.load()).toEqual([]);
    store.save(leases);
    await store.flush();
    expect(new FileLeaseStore(dir, "dhcp-leases.json", logger(log)).load()).toEqual(leases);
    expect(log).toEqual([]);
    const body = JSON.parse(fs.readFileSync(store.file, "utf8"));
    expect(body.version).toBe(LEASE_FILE_VERSION);
    expect(fs.statSync(store.file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });

  test("replaces the file by rename and leaves no temp file", async () => {
    const dir = tempDir();
    const store = new FileLeaseStore(dir, "l.json", logger([]));
    store.save(leases);
    await store.flush();
    const inodeBefore = fs.statSync(store.file).ino;
    store.save(leases.slice(0, 1));
    await store.flush();
    expect(fs.statSync(store.file).ino).not.toBe(inodeBefore);
    expect(fs.readdirSync(dir)).toEqual(["l.json"]);
    expect(store.load()).toEqual(leases.slice(0, 1));
  });

  test("a corrupt or foreign file loads as empty, with a warning", () => {
    const dir = tempDir();
    const log: string[] = [];
    const store = new FileLeaseStore(dir, "l.json", logger(log));
    fs.writeFileSync(store.file, '{"version": 1, "leases": [');
    expect(store.load()).toEqual([]);
    fs.writeFileSync(store.file, '{"version": 99, "leases": []}');
    expect(store.load()).toEqual([]);
    fs.writeFileSync(store.file, "null");
    expect(store.load()).toEqual([]);
    expect(log.filter((l) => l.startsWith("warn"))).toHaveLength(3);
  });

  test("malformed entries are skipped, the rest kept", () => {
    const dir = tempDir();
    const log: string[] = [];
    const store = new FileLeaseStore(dir, "l.json", logger(log));
    const first = leases[0] as Lease;
    const entries = [
      first,
      { ...first, ip: "10.0.2.300" },
      { ...first, mac: "nope" },
      { ...first, state: "weird" },
      { ...first, expiresAt: "soon" },
      { ...first, clientId: "xyz" },
      { ...first, hostname: "has space" },
      42,
      { ...first, mac: "52-54-00-AB-CD-EF", ip: "10.0.2.18" },
    ];
    fs.writeFileSync(store.file, JSON.stringify({ version: 1, leases: entries }));
    expect(store.load()).toEqual([first, { ...first, mac: "52:54:00:ab:cd:ef", ip: "10.0.2.18" }]);
    expect(log).toEqual(["warn skipped malformed DHCP leases"]);
  });

  test("a failing save is logged once and counted, not thrown", async () => {
    const dir = tempDir();
    const notADir = path.join(dir, "file");
    fs.writeFileSync(notADir, "x");
    const log: string[] = [];
    const store = new FileLeaseStore(notADir, "l.json", logger(log));
    expect(() => store.save(leases)).not.toThrow();
    await store.flush();
    store.save(leases);
    await store.flush();
    expect(log).toEqual(["error cannot save DHCP leases; serving from memory, retrying on the next change"]);
    expect(store.failures()).toBe(2);
  });

  test("an unreadable path (a directory) loads as empty, with a warning", () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, "l.json"));
    const log: string[] = [];
    expect(new FileLeaseStore(dir, "l.json", logger(log)).load()).toEqual([]);
    expect(log).toEqual(["warn cannot read DHCP lease file, starting empty"]);
  });

  test("the file name must not be a path", () => {
    expect(() => new FileLeaseStore("/tmp", "../x.json", logger([]))).toThrow(/plain file name/);
    expect(() => new FileLeaseStore("/tmp", "", logger([]))).toThrow(/plain file name/);
  });
});
