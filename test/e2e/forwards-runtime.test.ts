/**
 * Runtime port forwards, source preservation and guestfwd against a QEMU guest:
 * forwards added and removed through the slirp4netns JSON API (a tiny node client that
 * writes its request and half-closes, as rootlesskit does) work at once and go at once;
 * they come back after a restart with the same --state-dir; with
 * hostfwd-source=preserve the guest's server sees the real client address; guestfwd
 * carries data both ways to a command and to a host socket.
 * (Ports avoid 10080: fetch refuses it.)
 * The guest's servers are busybox httpd with small CGI scripts, not `nc -l -e`: a
 * backgrounded busybox nc -e that has served a connection took the serial shell (and
 * so init) down with it. A CGI echoes its POST body or prints REMOTE_ADDR, the peer
 * address the guest kernel holds for the accepted connection.
 * The guest's shell is PID 1 and reads commands with `stty -echo`, where busybox ash
 * takes an interrupted read (SIGCHLD) for end of input and exits: the kernel panics.
 * busybox httpd's handler exits without waiting for its CGI, so the CGI is reparented
 * to PID 1 and its exit sends SIGCHLD there; nc -e did the same. So every exchange with
 * a CGI runs while the shell is busy in a foreground `sleep` (withGuestBusy), where
 * ash reaps the orphan like any child.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import type { Guest } from "./harness/guest.js";
import { listeningNetdev, startConnectedUsernet } from "./harness/guest-server.js";
import type { Netns } from "./harness/netns.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const guestNet = { ip: "10.0.2.15/24", gw: "10.0.2.2" };
const started = /^# attach a QEMU guest/m;

/** One slirp4netns API request from inside the namespace; prints the reply. */
function api(ns: Netns, path: string, request: unknown): Promise<string> {
  const script = `const s = require("node:net").connect(${JSON.stringify(path)}, () => s.end(${JSON.stringify(JSON.stringify(request))})); let b = ""; s.on("data", (d) => (b += d)); s.on("end", () => console.log(b)); s.on("error", (e) => console.log("ERR " + e.code));`;
  return ns.execOk(process.execPath, ["-e", script]).then((t) => t.trim());
}

/** A TCP client in the namespace (optionally from a given local address): sends `send`, prints all it gets. */
function tcpClient(ns: Netns, port: number, send: string, opts: { host?: string; local?: string } = {}) {
  const conn = { port, host: opts.host ?? "127.0.0.1", ...(opts.local ? { localAddress: opts.local } : {}) };
  const script = `const s = require("node:net").connect(${JSON.stringify(conn)}, () => s.end(${JSON.stringify(send)})); let b = ""; s.on("data", (d) => (b += d)); s.on("end", () => { console.log(b.trim()); process.exit(0); }); s.on("error", (e) => { console.log("ERR " + e.code); process.exit(0); }); setTimeout(() => { console.log("TIMEOUT " + b); process.exit(0); }, 20000);`;
  return ns.execOk(process.execPath, ["-e", script], 30_000).then((t) => t.trim());
}

/** An HTTP/1.0 request from the namespace; resolves with the status line and body, or "ERR ..."/"TIMEOUT ...". */
async function httpClient(
  ns: Netns,
  port: number,
  request: { method?: "GET" | "POST"; path: string; body?: string },
  opts: { host?: string; local?: string } = {},
): Promise<{ status: string; body: string } | string> {
  const conn = { port, host: opts.host ?? "127.0.0.1", ...(opts.local ? { localAddress: opts.local } : {}) };
  const body = request.body ?? "";
  const head =
    `${request.method ?? "GET"} ${request.path} HTTP/1.0\r\n` +
    (request.body === undefined ? "" : `Content-Length: ${Buffer.byteLength(body)}\r\n`) +
    "\r\n";
  const script = `const s = require("node:net").connect(${JSON.stringify(conn)}, () => s.end(${JSON.stringify(head + body)})); let b = ""; s.on("data", (d) => (b += d)); s.on("end", () => { console.log(JSON.stringify(b)); process.exit(0); }); s.on("error", (e) => { console.log(JSON.stringify("ERR " + e.code)); process.exit(0); }); setTimeout(() => { console.log(JSON.stringify("TIMEOUT " + b)); process.exit(0); }, 20000);`;
  const raw = JSON.parse((await ns.execOk(process.execPath, ["-e", script], 30_000)).trim()) as string;
  const end = raw.indexOf("\r\n\r\n");
  if (raw.startsWith("ERR ") || raw.startsWith("TIMEOUT ") || end < 0) return raw;
  return { status: raw.slice(0, raw.indexOf("\r\n")), body: raw.slice(end + 4) };
}

/**
 * A guest shell command that writes an executable CGI script (a plain-text header, then
 * `lines`) as DIR/cgi-bin/NAME. Single quotes keep $VARS for the CGI to expand.
 */
function writeCgi(dir: string, name: string, lines: string[]): string {
  const script = ["#!/bin/sh", 'printf "Content-Type: text/plain\\r\\n\\r\\n"', ...lines];
  const path = `${dir}/cgi-bin/${name}`;
  return `mkdir -p ${dir}/cgi-bin && printf '%s\\n' ${script.map((l) => `'${l}'`).join(" ")} > ${path} && chmod +x ${path}`;
}

/**
 * Runs `fn` (host clients talking to a guest CGI) while the guest shell runs a
 * foreground sleep that outlasts it, so a CGI that exits as an orphan meets a shell
 * in waitpid(), not at its prompt (see above).
 */
async function withGuestBusy<T>(g: Guest, fn: () => Promise<T>): Promise<T> {
  const busy = g.runOk("sleep 6", { timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 500));
  try {
    return await fn();
  } finally {
    await busy;
  }
}

/** Echoes the POST body back, byte for byte. */
const echoCgi = ['head -c "$CONTENT_LENGTH"'];
/** Prints the client address busybox httpd got from accept() (without the port). */
const whoCgi = ['printf "%s" "$REMOTE_ADDR"'];

describeE2E(
  "runtime port forwards, source preservation, guestfwd",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("forwards added over the slirp4netns API work at once, go on removal, and survive a restart", async () => {
      const ns = await e2e.netns();
      const stateDir = mkdtempSync(join(tmpdir(), "une2e-fwd-state-"));
      e2e.defer(() => rmSync(stateDir, { recursive: true, force: true }));
      const sock = join(stateDir, "api.sock");
      const g = await e2e.guest(ns, { netdev: listeningNetdev(11000), nic: "virtio-net-pci", ...guestNet });
      await g.runOk(
        "mkdir -p /tmp/www && echo runtime-forward > /tmp/www/index.html && httpd -p 80 -h /tmp/www",
      );
      // a second server on 7777 (the second forward's target) whose CGI echoes the POST body
      await g.runOk(writeCgi("/tmp/echo", "echo.cgi", echoCgi));
      await g.runOk("httpd -p 7777 -h /tmp/echo");
      const userArgs = ["--state-dir", stateDir, "--api-socket", sock, "-netdev", "user,id=u0"];
      let u = await startConnectedUsernet(e2e, ns, userArgs, [11000]);

      expect(await api(ns, sock, { execute: "list_hostfwd" })).toBe('{"entries":[]}');
      expect(
        await api(ns, sock, {
          execute: "add_hostfwd",
          arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: 18080, guest_port: 80 },
        }),
      ).toBe('{"return":{"id":1}}');
      expect(
        await api(ns, sock, {
          execute: "add_hostfwd",
          arguments: { proto: "tcp", host_port: 18080, guest_port: 81 },
        }),
      ).toBe('{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}');
      expect(
        await api(ns, sock, {
          execute: "add_hostfwd",
          arguments: { proto: "tcp", host_port: 70000, guest_port: 80 },
        }),
      ).toBe('{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_port"}}');
      expect(
        await api(ns, sock, {
          execute: "add_hostfwd",
          arguments: { proto: "tcp", host_port: 18081, guest_port: 7777 },
        }),
      ).toBe('{"return":{"id":2}}');
      expect(await api(ns, sock, { execute: "list_hostfwd" })).toBe(
        '{"entries":[{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":18080,"guest_addr":"10.0.2.15","guest_port":80},' +
          '{"id":2,"proto":"tcp","host_addr":"0.0.0.0","host_port":18081,"guest_addr":"10.0.2.15","guest_port":7777}]}',
      );
      expect(await tcpClient(ns, 18080, "GET /index.html HTTP/1.0\r\n\r\n")).toMatch(/runtime-forward$/);
      expect(
        await withGuestBusy(g, () =>
          httpClient(ns, 18081, {
            method: "POST",
            path: "/cgi-bin/echo.cgi",
            body: "echo-through-runtime-forward",
          }),
        ),
      ).toEqual({ status: "HTTP/1.1 200 OK", body: "echo-through-runtime-forward" });

      expect(await api(ns, sock, { execute: "remove_hostfwd", arguments: { id: 2 } })).toBe('{"return":{}}');
      expect(await tcpClient(ns, 18081, "x")).toBe("ERR ECONNREFUSED");
      expect(await api(ns, sock, { execute: "bogus" })).toBe(
        '{"error":{"desc":"bad request: unknown execute"}}',
      );

      // refused adds spend no id (as in slirp4netns), removed ids are never handed out again;
      // a restart with the same state directory: forward 1 is back, 2 stays gone
      await u.close();
      u = await startConnectedUsernet(e2e, ns, userArgs, [11000], "usernet (restarted)");
      expect(await api(ns, sock, { execute: "list_hostfwd" })).toMatch(
        /^\{"entries":\[\{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":18080,/,
      );
      expect(await tcpClient(ns, 18080, "GET /index.html HTTP/1.0\r\n\r\n")).toMatch(/runtime-forward$/);
      expect(await tcpClient(ns, 18081, "x")).toBe("ERR ECONNREFUSED");
      expect(
        await api(ns, sock, {
          execute: "add_hostfwd",
          arguments: { proto: "tcp", host_port: 18082, guest_port: 80 },
        }),
      ).toBe('{"return":{"id":3}}');
    });

    test("hostfwd-source=preserve: the guest sees the real client address; loopback clients come from the gateway", async () => {
      const ns = await e2e.netns();
      // a second host address in the namespace for the client to come from
      await ns.execOk("ip", ["addr", "add", "198.51.100.7/32", "dev", "lo"]);
      await e2e.usernet(
        ns,
        [
          "-netdev",
          "user,id=u0,hostfwd-source=preserve,hostfwd=tcp::18090-:7777",
          "-netdev",
          "socket,id=s0,listen=127.0.0.1:10000",
        ],
        { ready: { tcp: [10000, 18090], stdout: started } },
      );
      const g = await e2e.guest(ns, {
        netdev: "socket,id=n0,connect=127.0.0.1:10000",
        nic: "virtio-net-pci",
        ...guestNet,
      });
      // the guest's server answers with the peer address its kernel holds for the connection
      await g.runOk(writeCgi("/tmp/who", "who.cgi", whoCgi));
      await g.runOk("httpd -p 0.0.0.0:7777 -h /tmp/who");
      const fromOutside = await withGuestBusy(g, () =>
        httpClient(ns, 18090, { path: "/cgi-bin/who.cgi" }, { host: "198.51.100.7", local: "198.51.100.7" }),
      );
      expect(fromOutside).toEqual({ status: "HTTP/1.1 200 OK", body: "198.51.100.7" });
      const fromLoopback = await withGuestBusy(g, () => httpClient(ns, 18090, { path: "/cgi-bin/who.cgi" }));
      expect(fromLoopback).toEqual({ status: "HTTP/1.1 200 OK", body: "10.0.2.2" });
    });

    test("guestfwd to a command and to a host socket carries data both ways", async () => {
      const ns = await e2e.netns();
      const echo = ns.spawn("host-echo", process.execPath, [
        "-e",
        "require('node:net').createServer((s) => { s.on('error', () => {}); s.on('data', (d) => s.write('host-got:' + d)); s.on('end', () => s.end()); }).listen(10095, '127.0.0.1'); setTimeout(() => {}, 600000)",
      ]);
      e2e.defer(() => echo.kill());
      await e2e.usernet(
        ns,
        [
          "-netdev",
          "user,id=u0,guestfwd=tcp:10.0.2.100:1234-cmd:tr a-z A-Z,guestfwd=tcp:10.0.2.100:1235-tcp:127.0.0.1:10095",
          "-netdev",
          "socket,id=s0,listen=127.0.0.1:10000",
        ],
        { ready: { tcp: [10000, 10095], stdout: started } },
      );
      const g = await e2e.guest(ns, {
        netdev: "socket,id=n0,connect=127.0.0.1:10000",
        nic: "virtio-net-pci",
        ...guestNet,
      });
      expect((await g.runOk("echo hello-command | nc -w 5 10.0.2.100 1234")).trim()).toBe("HELLO-COMMAND");
      expect((await g.runOk("echo hello-socket | nc -w 5 10.0.2.100 1235")).trim()).toBe(
        "host-got:hello-socket",
      );
      // another port on the guestfwd address: refused at once
      const other = await g.run("nc -w 5 10.0.2.100 1236 </dev/null; echo rc=$?", { timeoutMs: 20_000 });
      expect(other.output).toMatch(/rc=1/);
    });
  },
);
