import { describe, expect, it } from "vitest";
import { createLogger, silentLogger } from "../../../../src/log.js";
import {
  type SmbdChild,
  type SmbdExit,
  type SmbdHost,
  SmbdLauncher,
} from "../../../../src/services/smb/smbd-launcher.js";

class FakeChild implements SmbdChild {
  signals: string[] = [];
  exitNow!: (e: SmbdExit) => void;
  readonly exited = new Promise<SmbdExit>((r) => {
    this.exitNow = r;
  });
  constructor(
    readonly pid: number,
    private readonly obeys: boolean,
  ) {}
  kill(signal: "SIGTERM" | "SIGKILL"): void {
    this.signals.push(signal);
    if (this.obeys || signal === "SIGKILL") this.exitNow({ code: null, signal });
  }
}

/** A fake host: each spawn is one smbd with a connection named "conn-N". */
class FakeHost implements SmbdHost<string> {
  t = 0;
  dirs = new Set<string>();
  files = new Map<string, string>();
  children: FakeChild[] = [];
  spawned: { command: string; args: readonly string[] }[] = [];
  executable = true;
  dirProblem: string | undefined;
  obeysTerm = true;
  /** the next writeFile fails (a full disk) */
  writeFails = false;
  /** spawns wait for this before resolving, when set */
  spawnGate: Promise<void> | undefined;
  private n = 0;

  async isExecutable() {
    return this.executable;
  }
  async directoryProblem() {
    return this.dirProblem;
  }
  async makePrivateDir() {
    const d = `/tmp/usernet-smb.${++this.n}`;
    this.dirs.add(d);
    return d;
  }
  async mkdir(path: string) {
    this.dirs.add(path);
  }
  async writeFile(path: string, text: string) {
    if (this.writeFails) throw new Error("ENOSPC");
    this.files.set(path, text);
  }
  async readTail() {
    return "smbd: something broke\n";
  }
  async removeDir(path: string) {
    for (const d of [...this.dirs]) if (d === path || d.startsWith(`${path}/`)) this.dirs.delete(d);
  }
  async spawnOnConnection(command: string, args: readonly string[]) {
    this.spawned.push({ command, args });
    const c = new FakeChild(1000 + this.children.length, this.obeysTerm);
    this.children.push(c);
    if (this.spawnGate) await this.spawnGate;
    return { child: c, connection: `conn-${this.children.length}` };
  }
  async sleep(ms: number) {
    this.t += ms;
    await new Promise((r) => setImmediate(r));
  }
  now() {
    return this.t;
  }
}

function launcher(host: FakeHost, extra: Partial<ConstructorParameters<typeof SmbdLauncher>[0]> = {}) {
  return new SmbdLauncher({ shareDir: "/srv/share", user: "alice", host, log: silentLogger, ...extra });
}

const settle = () => new Promise((r) => setImmediate(r));

describe("SmbdLauncher", () => {
  it("checks at start-up for smbd and the directory, naming the package", async () => {
    const host = new FakeHost();
    await expect(launcher(host).check()).resolves.toBeUndefined();
    host.executable = false;
    await expect(launcher(host).check()).rejects.toThrow(
      "smb=/srv/share needs Samba's smbd, but /usr/sbin/smbd is missing; install it with: apt-get install samba",
    );
    host.executable = true;
    host.dirProblem = "is not a directory";
    await expect(launcher(host).check()).rejects.toThrow("smb=/srv/share: is not a directory");
  });

  it("runs one smbd per connection on it, no listener, sharing one private directory", async () => {
    const host = new FakeHost();
    const l = launcher(host);
    expect(host.spawned.length).toBe(0);
    expect(host.dirs.size).toBe(0);
    expect(await Promise.all([l.open(), l.open(), l.open()])).toEqual(["conn-1", "conn-2", "conn-3"]);
    expect(l.running).toBe(3);
    expect(l.counters.started).toBe(3);
    for (const s of host.spawned) {
      expect(s.command).toBe("/usr/sbin/smbd");
      // no -D/-F: with a socket on stdin smbd serves that connection and exits
      expect(s.args).toEqual([
        "--configfile=/tmp/usernet-smb.1/smb.conf",
        "--log-basename=/tmp/usernet-smb.1",
      ]);
    }
    const conf = host.files.get("/tmp/usernet-smb.1/smb.conf") ?? "";
    expect(conf).not.toMatch(/smb ports|interfaces/);
    expect(conf).toContain("path = /srv/share");
    expect(conf).toContain("force user = alice");
    expect([...host.dirs].sort()).toEqual([
      "/tmp/usernet-smb.1",
      "/tmp/usernet-smb.1/ncalrpc",
      "/tmp/usernet-smb.1/private",
    ]);
    // an smbd whose client left is forgotten; the directory stays for the next
    host.children[0]?.exitNow({ code: 0, signal: null });
    host.children[1]?.exitNow({ code: null, signal: "SIGTERM" });
    await settle();
    expect(l.running).toBe(1);
    expect(l.counters.failed).toBe(0);
    expect(await l.open()).toBe("conn-4");
    expect(host.files.size).toBe(1);
  });

  it("stops every smbd by its pid on close and removes the directory", async () => {
    const host = new FakeHost();
    const l = launcher(host);
    await l.open();
    await l.open();
    await l.close();
    expect(host.children.map((c) => c.signals)).toEqual([["SIGTERM"], ["SIGTERM"]]);
    expect(host.dirs.size).toBe(0);
    await expect(l.open()).rejects.toThrow(/closing/);
    expect(host.spawned.length).toBe(2);
  });

  it("kills an smbd that ignores SIGTERM", async () => {
    const host = new FakeHost();
    host.obeysTerm = false;
    const l = launcher(host, { stopTimeoutMs: 1000 });
    await l.open();
    await l.close();
    expect(host.children[0]?.signals).toEqual(["SIGTERM", "SIGKILL"]);
    expect(host.dirs.size).toBe(0);
  });

  it("refuses connections beyond maxProcesses, and takes them again when one ends", async () => {
    const host = new FakeHost();
    const l = launcher(host, { maxProcesses: 2 });
    await l.open();
    await l.open();
    await expect(l.open()).rejects.toThrow("2 smbd processes run already; connection refused");
    expect(l.counters.refused).toBe(1);
    host.children[0]?.exitNow({ code: 0, signal: null });
    await settle();
    expect(await l.open()).toBe("conn-3");
  });

  it("refuses while its directory cannot be made, and retries only after a pause", async () => {
    const host = new FakeHost();
    host.writeFails = true;
    const l = launcher(host, { retryAfterMs: 2000 });
    await expect(l.open()).rejects.toThrow("ENOSPC");
    expect(host.dirs.size).toBe(0);
    host.writeFails = false;
    // a SYN right after: the same answer, nothing redone
    await expect(l.open()).rejects.toThrow("ENOSPC");
    expect(host.spawned.length).toBe(0);
    expect(l.counters.refused).toBe(2);
    host.t += 2000;
    expect(await l.open()).toBe("conn-1");
  });

  it("logs an smbd that fails, with its log, once per pause", async () => {
    const lines: string[] = [];
    const host = new FakeHost();
    const l = launcher(host, { log: createLogger("info", { write: (s: string) => lines.push(s) }) });
    await l.open();
    await l.open();
    host.children[0]?.exitNow({ code: 1, signal: null });
    host.children[1]?.exitNow({ code: 1, signal: null });
    await settle();
    await settle();
    const warned = lines.filter((s) => s.includes("smbd exited"));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain("smbd exited (code 1); its log ends: smbd: something broke");
    expect(l.counters.failed).toBe(2);
  });

  it("kills an smbd whose spawn finished after close", async () => {
    const host = new FakeHost();
    let open!: () => void;
    host.spawnGate = new Promise((r) => {
      open = r;
    });
    const l = launcher(host);
    const p = l.open();
    await settle();
    await settle();
    expect(host.children.length).toBe(1);
    await l.close();
    open();
    await expect(p).rejects.toThrow(/closing/);
    expect(host.children[0]?.signals).toEqual(["SIGKILL"]);
  });
});
