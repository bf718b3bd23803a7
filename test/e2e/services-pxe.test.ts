/**
 * PXE netboot through usernet: a disk-less QEMU guest (`-boot n`, virtio-net-pci, so
 * the iPXE ROM from Debian's ipxe-qemu) gets its address and the boot file name from
 * usernet's DHCP (`bootfile=boot.ipxe`), fetches that iPXE script by TFTP, and the
 * script fetches the test kernel and initramfs by TFTP (`tftp://10.0.2.2/...`) and
 * boots them to the guest's ready marker. About 12 s under TCG with QEMU's own slirp;
 * the bound here is generous.
 *
 * Once up, the guest shows that the kernel command line came from the script and
 * that DHCP gives the netbooted MAC the address iPXE had.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect, test } from "vitest";
import { udhcpc } from "./harness/dhcp-clients.js";
import { expectPing } from "./harness/ping.js";
import { describeE2E, requireGuestImage } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const started = /^# attach a QEMU guest/m;
const mac = "52:54:00:12:34:99";

describeE2E(
  "PXE netboot with iPXE from usernet's DHCP and TFTP",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("a disk-less guest boots the test kernel and initramfs over TFTP", async () => {
      const image = requireGuestImage();
      const dir = mkdtempSync(join(tmpdir(), "une2e-pxe-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      // iPXE boots a bzImage; the cache has it next to the uncompressed PVH kernel.
      copyFileSync(join(dirname(image.initrd), "vmlinuz"), join(dir, "vmlinuz"));
      copyFileSync(image.initrd, join(dir, "initramfs.gz"));
      writeFileSync(
        join(dir, "boot.ipxe"),
        [
          "#!ipxe",
          // iPXE's own ${…} settings, not template placeholders.
          // biome-ignore lint/suspicious/noTemplateCurlyInString: iPXE syntax
          "echo usernet-pxe: script loaded from ${next-server} for ${ip}",
          "kernel tftp://10.0.2.2/vmlinuz console=ttyS0 quiet panic=-1 usernet.ip=10.0.2.15/24 usernet.gw=10.0.2.2 usernet.netbooted=1",
          "initrd tftp://10.0.2.2/initramfs.gz",
          "boot",
          "",
        ].join("\n"),
      );
      const ns = await e2e.netns();
      await e2e.usernet(
        ns,
        [
          "-netdev",
          `user,id=u0,tftp=${dir},bootfile=boot.ipxe,dns-upstream=127.0.0.1:5353`,
          "-netdev",
          "socket,id=s0,listen=127.0.0.1:10000",
        ],
        { ready: { tcp: [10000], stdout: started } },
      );
      const t0 = Date.now();
      const g = await e2e.guest(ns, {
        name: "pxe-guest",
        netboot: true,
        netdev: "socket,id=n0,connect=127.0.0.1:10000",
        nic: "virtio-net-pci",
        mac,
        bootTimeoutMs: 120_000,
      });
      process.stderr.write(`services-pxe: netboot to the ready marker in ${Date.now() - t0} ms\n`);

      // iPXE's progress on the serial console: its banner, DHCP, the script's echo.
      const serial = g.serial();
      expect(serial).toMatch(/iPXE/);
      expect(serial).toMatch(/usernet-pxe: script loaded from 10\.0\.2\.2 for 10\.0\.2\.15/);

      expect(await g.runOk("cat /proc/cmdline")).toMatch(/usernet\.netbooted=1/);
      await expectPing(g, "10.0.2.2", { count: 2 });
      // iPXE's lease belongs to this MAC: the booted system gets the same address,
      // and the boot file name comes with it.
      expect(await udhcpc(g)).toMatchObject({ ip: "10.0.2.15", boot_file: "boot.ipxe", siaddr: "10.0.2.2" });
    });
  },
  { timeoutMs: 200_000 },
);
