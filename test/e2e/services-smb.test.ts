/**
 * SMB at 10.0.2.4 (`smb=DIR`) with Samba's smbclient in a QEMU guest, against the host's
 * Samba smbd that usernet runs per connection with its private config (Debian packages:
 * samba on the host, smbclient unpacked into the guest's third archive,
 * initramfs-smb.gz, which build-guest.sh builds next to the dig one).
 *
 * Checks: nothing is made before the first guest connection; `smbclient -N -m SMB3`
 * lists the share and fetches a file whose sha256 matches; a file the guest puts lands
 * in DIR (the share is writable) as 0600; no TCP listener exists in the namespace at
 * any check (the hub is a unix socket, and smbd gets its connection on stdin); another
 * local user (`nobody`) gets nothing from smbclient and cannot enter smbd's directory;
 * usernet stops every smbd and removes its directory when it stops.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect, test } from "vitest";
import { describeE2E, requireGuestImage } from "./harness/prereqs.js";
import { run } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";

const started = /^# attach a QEMU guest/m;

async function waitFor(ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not so after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** smbd processes whose command line names `dir` */
function smbdsFor(dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8");
      if (cmd.includes("smbd") && cmd.includes(dir)) pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** runs a command in the namespace as `nobody` */
function asNobody(ns: { wrap(cmd: string, args: readonly string[]): string[] }, cmd: string, args: string[]) {
  const [c, ...a] = ns.wrap("setpriv", [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--",
    cmd,
    ...args,
  ]);
  return run(c as string, a, 30_000);
}

describeE2E(
  "SMB with smbclient against the smbd usernet starts",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("smbclient -N lists the share, gets a file whole and puts one back", async () => {
      if (!existsSync("/usr/sbin/smbd")) throw new Error("SMB e2e needs Samba's smbd: apt-get install samba");
      const share = mkdtempSync(join(tmpdir(), "une2e-smb-"));
      e2e.defer(() => rmSync(share, { recursive: true, force: true }));
      const data = randomBytes(3 * 1024 * 1024 + 123);
      writeFileSync(join(share, "data.bin"), data);
      const sha = createHash("sha256").update(data).digest("hex");
      const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith("usernet-smb.")));

      const image = requireGuestImage();
      const smbInitrd = join(dirname(image.initrd), "initramfs-smb.gz");
      if (!existsSync(smbInitrd))
        throw new Error(`no ${smbInitrd}: the guest build has no smbclient archive`);

      const ns = await e2e.netns();
      const sock = join(share, "..", `${share.split("/").pop()}.sock`);
      e2e.defer(() => rmSync(sock, { force: true }));
      const u = await e2e.usernet(
        ns,
        [
          "-netdev",
          `user,id=u0,smb=${share},dns-upstream=127.0.0.1:5353`,
          "-netdev",
          `stream,id=s0,server=on,addr.type=unix,addr.path=${sock}`,
        ],
        { ready: { unix: [sock], stdout: started } },
      );
      const noTcpListener = async () => expect((await ns.execOk("ss", ["-Hltn"])).trim()).toBe("");
      const g = await e2e.guest(ns, {
        name: "smb-guest",
        netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${sock}`,
        nic: "virtio-net-pci",
        ip: "10.0.2.15/24",
        gw: "10.0.2.2",
        memoryMb: 512,
        // QEMU takes the last -initrd: the base plus smbclient
        extraArgs: ["-initrd", smbInitrd],
      });
      // smbd starts on demand: not yet
      const runDirs = () =>
        readdirSync(tmpdir()).filter((n) => n.startsWith("usernet-smb.") && !before.has(n));
      expect(runDirs()).toEqual([]);

      const ls = await g.runOk("smbclient //10.0.2.4/qemu -N -m SMB3 -c 'ls' 2>&1", { timeoutMs: 60_000 });
      expect(ls).toMatch(/^\s+data\.bin\s+\S+\s+3145851\s/m);
      const dirs = runDirs();
      expect(dirs.length).toBe(1);
      const runDir = join(tmpdir(), dirs[0] ?? "");
      expect(statSync(runDir).mode & 0o777).toBe(0o700);
      expect(statSync(join(runDir, "smb.conf")).mode & 0o777).toBe(0o600);
      await noTcpListener();

      // another local user: nothing to connect to, no way into smbd's files
      for (const port of ["445", "139"]) {
        const r = await asNobody(ns, "smbclient", [
          "//127.0.0.1/qemu",
          "-p",
          port,
          "-N",
          "-m",
          "SMB3",
          "-c",
          "ls",
        ]);
        expect(r.code, `smbclient as nobody on port ${port}`).not.toBe(0);
        expect(r.stdout + r.stderr).toMatch(/NT_STATUS_CONNECTION_REFUSED/);
      }
      const peek = await asNobody(ns, "ls", [runDir]);
      expect(peek.code).not.toBe(0);
      expect(peek.stderr).toMatch(/Permission denied/);

      await g.runOk("smbclient //10.0.2.4/qemu -N -m SMB3 -c 'get data.bin /tmp/f' 2>&1", {
        timeoutMs: 120_000,
      });
      const got = await g.runOk("sha256sum /tmp/f", { timeoutMs: 30_000 });
      expect(got.trim().split(/\s+/)[0]).toBe(sha);

      await g.runOk("echo from-the-guest > /tmp/up.txt", { timeoutMs: 10_000 });
      await g.runOk("smbclient //10.0.2.4/qemu -N -m SMB3 -c 'put /tmp/up.txt up.txt' 2>&1", {
        timeoutMs: 60_000,
      });
      expect(readFileSync(join(share, "up.txt"), "utf8")).toBe("from-the-guest\n");
      expect(statSync(join(share, "up.txt")).mode & 0o777).toBe(0o600);
      await noTcpListener();
      // each smbd served one connection and is gone with it
      await waitFor(() => smbdsFor(runDir).length === 0, 10_000);

      await g.close();
      await u.close();
      expect(existsSync(runDir)).toBe(false);
      expect(smbdsFor(runDir)).toEqual([]);
    });
  },
  { timeoutMs: 300_000 },
);
