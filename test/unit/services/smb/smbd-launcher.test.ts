import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../../src/log.js";
import {
  type SmbdChild,
  type SmbdExit,
  type SmbdHost,
  SmbdLauncher,
} from "../../../../src/services/smb/smbd-launcher.js";

/** A fake host: smbd "listens" once `listening` is set; time advances with sleeps. */
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

class FakeHost implements SmbdHost {
  t = 0;
  dirs = new Set<string>();
  files = new Map<string, string>();
  children: FakeChild[] = [];
  spawned: { command: string; args: readonly string[] }[] = [];
  /** probes answered false before smbd listens */
  probesBeforeListen = 2;
  probes = 0;
  executable = true;
  dirProblem: string | undefined;
  obeysTerm = true;
  /** what the next smbd does: listen, exit at once, or never listen */
  behaviour: "listen" | "exit" | "hang" = "listen";
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
    this.files.set(path, text);
  }
  async readTail() {
    return "smbd: something broke\n";
  }
  async removeDir(path: string) {
    for (const d of [...this.dirs]) if (d === path || d.startsWith(`${path}/`)) this.dirs.delete(d);
  }
  async freePort() {
    return 40000 + this.n;
  }
  spawn(command: string, args: readonly string[]): SmbdChild {
    this.spawned.push({ command, args });
    const c = new FakeChild(1000 + this.children.length, this.obeysTerm);
    this.children.push(c);
    this.probes = 0;
    if (this.behaviour === "exit") c.exitNow({ code: 1, signal: null });
    return c;
  }
  async probe() {
    this.probes++;
    const child = this.children.at(-1);
    return this.behaviour === "listen" && child !== undefined && this.probes > this.probesBeforeListen;
  }
  async sleep(ms: number) {
    this.t += ms;
    // a real sleep yields to I/O; so does this one (a test can act between polls)
    await new Promise((r) => setImmediate(r));
  }
  now() {
    return this.t;
  }
}

function launcher(host: FakeHost, extra: Partial<ConstructorParameters<typeof SmbdLauncher>[0]> = {}) {
  return new SmbdLauncher({ shareDir: "/srv/share", user: "alice", host, log: silentLogger, ...extra });
}

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

  it("starts nothing until asked, then one smbd for concurrent callers, with a private config", async () => {
    const host = new FakeHost();
    const l = launcher(host);
    expect(host.spawned.length).toBe(0);
    const ports = await Promise.all([l.port(), l.port(), l.port()]);
    expect(ports).toEqual([40001, 40001, 40001]);
    expect(host.spawned.length).toBe(1);
    expect(l.isRunning).toBe(true);
    const spawn = host.spawned[0];
    expect(spawn?.command).toBe("/usr/sbin/smbd");
    expect(spawn?.args).toEqual([
      "--foreground",
      "--no-process-group",
      "--configfile=/tmp/usernet-smb.1/smb.conf",
      "--log-basename=/tmp/usernet-smb.1",
    ]);
    const conf = host.files.get("/tmp/usernet-smb.1/smb.conf") ?? "";
    expect(conf).toContain("smb ports = 40001");
    expect(conf).toContain("path = /srv/share");
    expect(conf).toContain("force user = alice");
    expect(host.dirs).toContain("/tmp/usernet-smb.1/private");
    expect(host.dirs).toContain("/tmp/usernet-smb.1/ncalrpc");
    // later connections reuse it
    expect(await l.port()).toBe(40001);
    expect(host.spawned.length).toBe(1);
  });

  it("stops smbd by its pid on close and removes its directory", async () => {
    const host = new FakeHost();
    const l = launcher(host);
    await l.port();
    await l.close();
    expect(host.children[0]?.signals).toEqual(["SIGTERM"]);
    expect(host.dirs.size).toBe(0);
    await expect(l.port()).rejects.toThrow(/closing/);
    expect(host.spawned.length).toBe(1);
  });

  it("kills an smbd that ignores SIGTERM", async () => {
    const host = new FakeHost();
    host.obeysTerm = false;
    const l = launcher(host, { stopTimeoutMs: 1000 });
    await l.port();
    await l.close();
    expect(host.children[0]?.signals).toEqual(["SIGTERM", "SIGKILL"]);
    expect(host.dirs.size).toBe(0);
  });

  it("reports an smbd that exits at once, with its log, and cleans up", async () => {
    const host = new FakeHost();
    host.behaviour = "exit";
    const l = launcher(host);
    await expect(l.port()).rejects.toThrow(
      /smbd exited \(code 1\) before listening; its log ends: smbd: something broke/,
    );
    expect(host.dirs.size).toBe(0);
    expect(l.isRunning).toBe(false);
  });

  it("gives up on an smbd that never listens, and retries only after a pause", async () => {
    const host = new FakeHost();
    host.behaviour = "hang";
    const l = launcher(host, { startTimeoutMs: 1000, retryAfterMs: 2000 });
    await expect(l.port()).rejects.toThrow(/did not listen on 127\.0\.0\.1:40001 within 1000 ms/);
    expect(host.children[0]?.signals).toEqual(["SIGTERM"]);
    expect(host.dirs.size).toBe(0);
    // a SYN right after: no new smbd
    await expect(l.port()).rejects.toThrow(/did not listen/);
    expect(host.spawned.length).toBe(1);
    host.t += 2000;
    host.behaviour = "listen";
    expect(await l.port()).toBe(40002);
    expect(host.spawned.length).toBe(2);
  });

  it("starts a new smbd after the old one died", async () => {
    const host = new FakeHost();
    const l = launcher(host);
    await l.port();
    host.children[0]?.exitNow({ code: null, signal: "SIGSEGV" });
    await new Promise((r) => setImmediate(r));
    expect(l.isRunning).toBe(false);
    expect(host.dirs.has("/tmp/usernet-smb.1")).toBe(false);
    expect(await l.port()).toBe(40002);
    expect(l.starts).toBe(2);
  });

  it("stops an smbd still starting when closed", async () => {
    const host = new FakeHost();
    host.behaviour = "hang";
    const l = launcher(host, { startTimeoutMs: 1e9 });
    const p = l.port();
    await new Promise((r) => setImmediate(r));
    await l.close();
    await expect(p).rejects.toThrow(/closed while smbd was starting/);
    expect(host.children[0]?.signals).toEqual(["SIGTERM"]);
    expect(host.dirs.size).toBe(0);
  });
});
