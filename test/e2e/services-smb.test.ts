/**
 * SMB at 10.0.2.4 (`smb=DIR`) with Samba's smbclient in a QEMU guest, against the host's
 * Samba smbd that usernet starts on demand with its private config (Debian packages:
 * samba on the host, smbclient unpacked into the guest's third archive,
 * initramfs-smb.gz, which build-guest.sh builds next to the dig one).
 *
 * Checks: nothing runs before the first guest connection; `smbclient -N -m SMB3` lists
 * the share and fetches a file whose sha256 matches; a file the guest puts lands in DIR
 * (the share is writable); usernet stops smbd and removes its directory when it stops.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect, test } from "vitest";
import { describeE2E, requireGuestImage } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const started = /^# attach a QEMU guest/m;

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
      const u = await e2e.usernet(
        ns,
        [
          "-netdev",
          `user,id=u0,smb=${share},dns-upstream=127.0.0.1:5353`,
          "-netdev",
          "socket,id=s0,listen=127.0.0.1:10445",
        ],
        { ready: { tcp: [10445], stdout: started } },
      );
      const g = await e2e.guest(ns, {
        name: "smb-guest",
        netdev: "socket,id=n0,connect=127.0.0.1:10445",
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
      expect(smbdsFor(runDir).length).toBeGreaterThan(0);

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

      await g.close();
      await u.close();
      expect(existsSync(runDir)).toBe(false);
      expect(smbdsFor(runDir)).toEqual([]);
    });
  },
  { timeoutMs: 300_000 },
);
