/**
 * The TFTP server at 10.0.2.2:69 (`tftp=DIR`) with three real clients in one QEMU
 * guest: busybox tftp (with and without `-b` blksize), tftp-hpa (octet, netascii,
 * verbose) and atftp (with and without blksize/tsize/windowsize options). Files are
 * random bytes generated into a temp dir at test time and compared by sha256 in the
 * guest. Paths that leave the root (`../x`, absolute) must be refused with an error
 * packet the client prints.
 *
 * The 40 MiB file is fetched once, by the client path that is fastest in the guest
 * (atftp, blksize 1428, windowsize 8): under TCG the guest's side is the bottleneck.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import type { Guest } from "./harness/guest.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const started = /^# attach a QEMU guest/m;

interface TftpFiles {
  dir: string;
  root: string;
  sha: Map<string, string>;
}

/** Random files in <tmp>/root, and a "secret" next to (outside) the root. */
function makeFiles(): TftpFiles {
  const dir = mkdtempSync(join(tmpdir(), "une2e-tftp-"));
  const root = join(dir, "root");
  mkdirSync(join(root, "sub/dir"), { recursive: true });
  const sha = new Map<string, string>();
  const put = (name: string, data: Buffer) => {
    writeFileSync(join(root, name), data);
    sha.set(name, createHash("sha256").update(data).digest("hex"));
  };
  put("small.bin", randomBytes(1000));
  // Not a multiple of any block size, so the last block is short.
  put("mid.bin", randomBytes(3 * 1024 * 1024 + 7));
  // Exactly 100 blocks of 512: the transfer ends with an empty DATA block.
  put("exact.bin", randomBytes(512 * 100));
  put("sub/dir/nested.bin", randomBytes(70_000));
  put("big.bin", randomBytes(40 * 1024 * 1024));
  put("text.txt", Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${i}\tsome text\n`).join("")));
  writeFileSync(join(dir, "secret"), "outside the TFTP root\n");
  return { dir, root, sha };
}

async function guestSha(g: Guest, path: string): Promise<string> {
  const out = await g.runOk(`sha256sum ${path} && rm -f ${path}`, { timeoutMs: 60_000 });
  return out.trim().split(/\s+/)[0] ?? "";
}

describeE2E(
  "TFTP server with busybox tftp, tftp-hpa and atftp",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("three clients fetch files whole, with and without options; escapes are refused", async () => {
      const files = makeFiles();
      e2e.defer(() => rmSync(files.dir, { recursive: true, force: true }));
      const want = (name: string) => files.sha.get(name);
      const ns = await e2e.netns();
      await e2e.usernet(
        ns,
        [
          "-netdev",
          `user,id=u0,tftp=${files.root},dns-upstream=127.0.0.1:5353`,
          "-netdev",
          "socket,id=s0,listen=127.0.0.1:10000",
        ],
        { ready: { tcp: [10000], stdout: started } },
      );
      const g = await e2e.guest(ns, {
        name: "tftp-guest",
        netdev: "socket,id=n0,connect=127.0.0.1:10000",
        nic: "virtio-net-pci",
        ip: "10.0.2.15/24",
        gw: "10.0.2.2",
      });
      const fetch = async (cmd: string, name: string, opts: { timeoutMs?: number } = {}) => {
        const out = await g.runOk(cmd, { timeoutMs: opts.timeoutMs ?? 60_000 });
        expect(await guestSha(g, "/tmp/got"), `${cmd}\n${out}`).toBe(want(name));
        return out;
      };

      // busybox tftp: RFC 1350 plain (512-byte blocks), then blksize 1428.
      await fetch("busybox tftp -g -r small.bin -l /tmp/got 10.0.2.2", "small.bin");
      await fetch("busybox tftp -g -r exact.bin -l /tmp/got 10.0.2.2", "exact.bin");
      await fetch("busybox tftp -g -r mid.bin -l /tmp/got 10.0.2.2", "mid.bin");
      await fetch("busybox tftp -b 1428 -g -r mid.bin -l /tmp/got 10.0.2.2", "mid.bin");
      await fetch("busybox tftp -b 1428 -g -r sub/dir/nested.bin -l /tmp/got 10.0.2.2", "sub/dir/nested.bin");

      // tftp-hpa: octet; verbose; netascii (the client turns CR LF back into LF).
      // (busybox sh runs its own applet for a bare `tftp`, so the full path. Its `get` stores into the current dir under the remote name's last part.)
      await fetch(
        "cd /tmp && /usr/local/bin/tftp -m binary 10.0.2.2 -c get mid.bin && mv mid.bin got",
        "mid.bin",
      );
      const verbose = await fetch(
        "cd /tmp && /usr/local/bin/tftp -v -m binary 10.0.2.2 -c get sub/dir/nested.bin && mv nested.bin got",
        "sub/dir/nested.bin",
      );
      expect(verbose).toMatch(/getting from 10\.0\.2\.2:sub\/dir\/nested\.bin to nested\.bin \[octet\]/);
      expect(verbose).toMatch(/Received 70000 bytes/);
      await fetch(
        "cd /tmp && /usr/local/bin/tftp -m netascii 10.0.2.2 -c get text.txt && mv text.txt got",
        "text.txt",
      );

      // atftp: plain, then options; the OACK it prints carries the server's answers.
      await fetch("atftp -g -r small.bin -l /tmp/got 10.0.2.2", "small.bin");
      const withOpts = await fetch(
        'atftp --verbose --trace --option "blksize 1428" --option "tsize 0" --option "windowsize 8" -g -r mid.bin -l /tmp/got 10.0.2.2',
        "mid.bin",
      );
      expect(withOpts).toMatch(/blksize[ :=]+1428/i);
      expect(withOpts).toMatch(new RegExp(`tsize[ :=]+${3 * 1024 * 1024 + 7}`, "i"));

      // 40 MiB once, on the fastest path; then the guest's time for it.
      const t0 = Date.now();
      await fetch(
        'atftp --option "blksize 1428" --option "tsize 0" --option "windowsize 8" -g -r big.bin -l /tmp/got 10.0.2.2',
        "big.bin",
        { timeoutMs: 180_000 },
      );
      process.stderr.write(
        `services-tftp: 40 MiB over atftp (blksize 1428, windowsize 8) in ${Date.now() - t0} ms\n`,
      );

      // Escapes: each client is refused with an error and writes nothing useful.
      const refused = [
        "busybox tftp -g -r ../secret -l /tmp/got 10.0.2.2",
        `busybox tftp -g -r ${join(files.dir, "secret")} -l /tmp/got 10.0.2.2`,
        "cd /tmp && /usr/local/bin/tftp -m binary 10.0.2.2 -c get ../secret && mv secret got",
        "cd /tmp && /usr/local/bin/tftp -m binary 10.0.2.2 -c get /etc/passwd && mv passwd got",
        "atftp -g -r ../secret -l /tmp/got 10.0.2.2",
        "atftp -g -r sub/../../secret -l /tmp/got 10.0.2.2",
      ];
      for (const cmd of refused) {
        const r = await g.run(`${cmd}; rc=$?; cat /tmp/got 2>/dev/null; rm -f /tmp/got; [ "$rc" = 0 ]`, {
          timeoutMs: 30_000,
        });
        expect(r.output, cmd).not.toMatch(/outside the TFTP root|root:x:0/);
        expect(r.output, cmd).toMatch(/error|denied|not found|violation/i);
        if (!cmd.includes("bin/tftp ")) expect(r.code, `${cmd}\n${r.output}`).not.toBe(0);
      }
      // A missing file inside the root: "file not found", not a hang.
      const missing = await g.run("busybox tftp -g -r nosuch.bin -l /tmp/got 10.0.2.2", {
        timeoutMs: 30_000,
      });
      expect(missing.code).not.toBe(0);
      expect(missing.output).toMatch(/not found|error/i);
    });
  },
  { timeoutMs: 300_000 },
);
