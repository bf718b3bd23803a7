/**
 * The management API with real clients: curl on its unix socket, `usernet ctl`, and
 * tshark reading a capture taken through it, while a QEMU guest does DHCP (busybox
 * udhcpc) and an HTTP fetch (busybox wget) over TCP to a server on the namespace's
 * loopback (reached as 10.0.2.2).
 *
 * tshark runs with -n (no name resolution: it must not ask any resolver). CI needs the
 * `tshark` Debian package; without it this suite fails when USERNET_E2E=required and
 * is skipped otherwise.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { udhcpc } from "./harness/dhcp-clients.js";
import { describeE2E, e2eMode, usernetMain } from "./harness/prereqs.js";
import { Proc, run } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";

const hasTshark = spawnSync("tshark", ["-v"], { stdio: "ignore" }).status === 0;
const httpPort = 18090;
const socketPort = 10000;

describeE2E(
  "management API: curl, usernet ctl, capture read by tshark",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test.skipIf(!hasTshark && e2eMode() !== "required")(
      "status, leases, flows, forwards, metrics and a pcap of DHCP and TCP",
      async () => {
        if (!hasTshark) throw new Error("tshark is missing (apt-get install tshark)");
        const dir = mkdtempSync(join(tmpdir(), "une2e-api-"));
        e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
        const sock = join(dir, "api.sock");
        const ns = await e2e.netns();

        ns.spawn("http", process.execPath, [
          "-e",
          `require("http").createServer((q, s) => s.end("hello from the host\\n")).listen(${httpPort}, "127.0.0.1")`,
        ]);
        await e2e.usernet(
          ns,
          [
            "--api",
            sock,
            "-netdev",
            "user,id=u0,dns-upstream=127.0.0.1:5353",
            "-netdev",
            `socket,id=s0,listen=127.0.0.1:${socketPort}`,
          ],
          { ready: { unix: [sock], tcp: [socketPort, httpPort] } },
        );
        expect((spawnSync("stat", ["-c", "%a", sock]).stdout ?? "").toString().trim()).toBe("600");

        const curl = (path: string, extra: string[] = []) =>
          run("curl", ["-sS", "--max-time", "10", "--unix-socket", sock, ...extra, `http://usernet${path}`]);
        const ctl = (...args: string[]) =>
          run(process.execPath, [usernetMain() as string, "ctl", "--api", sock, ...args], 20_000);

        const guest = await e2e.guest(ns, {
          name: "g",
          netdev: `socket,id=n0,connect=127.0.0.1:${socketPort}`,
          nic: "virtio-net-pci",
        });

        // a capture of everything from before DHCP until the API closes it
        const pcapFile = join(dir, "hub0.pcap");
        const capture = new Proc("curl capture", "curl", [
          "-sS",
          "--max-time",
          "120",
          "--unix-socket",
          sock,
          "-o",
          pcapFile,
          "http://usernet/v1/hubs/0/capture",
        ]);
        e2e.defer(() => capture.kill(1000));
        let captureId: string | undefined;
        for (let i = 0; i < 100 && captureId === undefined; i++) {
          const s = JSON.parse((await curl("/v1/status")).stdout);
          captureId = s.ports.find((p: { kind: string }) => p.kind === "capture")?.name;
          if (!captureId) await new Promise((r) => setTimeout(r, 100));
        }
        expect(captureId).toMatch(/^capture\d+$/);

        const lease = await udhcpc(guest);
        expect(lease.ip).toBe("10.0.2.15");
        const page = await guest.run(`wget -q -O - http://10.0.2.2:${httpPort}/`);
        expect(page.output).toContain("hello from the host");

        // closing the capture through the API ends curl's download cleanly
        const del = await curl(`/v1/ports/${captureId}`, ["-X", "DELETE", "-w", "%{http_code}"]);
        expect(del.stdout).toBe("204");
        const exit = await capture.waitExit(10_000);
        expect(exit?.code).toBe(0);

        const shark = await run("tshark", ["-n", "-r", pcapFile], 60_000);
        expect(shark.code, shark.stderr).toBe(0);
        for (const msg of ["DHCP Discover", "DHCP Offer", "DHCP Request", "DHCP ACK"]) {
          expect(shark.stdout).toContain(msg);
        }
        expect(shark.stdout).toMatch(
          new RegExp(`10\\.0\\.2\\.15 → 10\\.0\\.2\\.2 +TCP .*${httpPort} \\[SYN\\]`),
        );
        expect(shark.stdout).toMatch(/HTTP .*GET \/ HTTP\/1\.[01]/);
        const fields = await run("tshark", [
          "-n",
          "-r",
          pcapFile,
          "-Y",
          "http.response",
          "-T",
          "fields",
          "-e",
          "http.file_data",
        ]);
        expect(fields.stdout).toMatch(/hello from the host|68656c6c6f/);

        // metrics: per-port and per-protocol counters
        const metrics = (await curl("/metrics")).stdout;
        const value = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? Number.NaN);
        expect(
          value(
            /^usernet_port_rx_frames_total\{hub="0",port="s0#1",kind="socket-listen",netdev="s0"\} (\d+)$/m,
          ),
        ).toBeGreaterThanOrEqual(8);
        expect(
          value(/^usernet_port_tx_frames_total\{hub="0",port="u0",kind="user",netdev="u0"\} (\d+)$/m),
        ).toBeGreaterThan(5);
        expect(
          value(/^usernet_dhcp_messages_total\{netdev="u0",type="acks"\} (\d+)$/m),
        ).toBeGreaterThanOrEqual(1);
        expect(value(/^usernet_tcp_connections_opened_total\{netdev="u0"\} (\d+)$/m)).toBeGreaterThanOrEqual(
          1,
        );
        expect(value(/^usernet_stack_arp_replies_total\{netdev="u0"\} (\d+)$/m)).toBeGreaterThanOrEqual(1);
        // loss-recovery counters are there for every user network, zero on a clean link or not
        for (const name of ["retransmitted_segments", "timeouts", "out_of_order_segments", "window_probes"]) {
          expect(
            value(new RegExp(`^usernet_tcp_${name}_total\\{netdev="u0"\\} (\\d+)$`, "m")),
          ).toBeGreaterThanOrEqual(0);
        }
        expect(value(/^usernet_stack_frames_total\{netdev="u0",direction="rx"\} (\d+)$/m)).toBeGreaterThan(5);
        expect(metrics).toMatch(/^usernet_dhcp_leases\{netdev="u0",state="bound"\} 1$/m);

        // usernet ctl
        const status = await ctl("status");
        expect(status.code, status.stderr).toBe(0);
        expect(status.stdout).toMatch(/^u0 +user +0 +user stack 10\.0\.2\.0\/24/m);
        expect(status.stdout).toMatch(/^s0#1 +socket-listen +0 +s0 /m);
        const leases = await ctl("leases");
        expect(leases.stdout).toMatch(/^u0 +10\.0\.2\.15 +52:54:00:12:34:56 +bound /m);
        expect((await ctl("flows")).code).toBe(0);
        const add = await ctl("forwards", "add", "tcp:127.0.0.1:18095-:80");
        expect(add.code, add.stderr).toBe(0);
        const id = /^ *(\d+) +u0 +tcp +127\.0\.0\.1:18095/m.exec(add.stdout)?.[1];
        expect(id).toBeDefined();
        const dup = await ctl("forwards", "add", "tcp:127.0.0.1:18095-:80");
        expect(dup.code).toBe(1);
        expect(dup.stderr).toMatch(/conflict/);
        expect((await ctl("forwards", "list")).stdout).toMatch(/127\.0\.0\.1:18095/);
        expect((await ctl("forwards", "remove", id as string)).code).toBe(0);
        expect((await ctl("--json", "forwards")).stdout.trim()).toBe("[]");

        // ctl capture with a bound: the guest's pings to the gateway, read back by tshark.
        // The guest's own chatter (IPv6 MLD reports and router solicitations after boot,
        // an ARP refresh) shares the hub, so the bound leaves room for a few such frames
        // and the pings outnumber it: the capture must stop at exactly 12 frames with
        // both requests and replies in it.
        const small = join(dir, "ping.pcap");
        const pending = ctl("capture", "0", small, "--count", "12");
        await new Promise((r) => setTimeout(r, 500));
        await guest.run("ping -c 10 -i 0.2 10.0.2.2");
        const done = await pending;
        expect(done.code, done.stderr).toBe(0);
        const pings = await run("tshark", ["-n", "-r", small]);
        expect(pings.stdout.trim().split("\n")).toHaveLength(12);
        expect(pings.stdout).toMatch(/ICMP .*Echo \(ping\) request/);
        expect(pings.stdout).toMatch(/ICMP .*Echo \(ping\) reply/);
      },
    );
  },
);
