/**
 * Multicast is tested only inside a network namespace this test creates (lo with
 * multicast on and 224.0.0.0/4 routed to it): in the host's namespace multicast
 * would follow the default route out of the machine. Node cannot enter a namespace,
 * so the scenario runs as a child process under `ip netns exec`, using the port code
 * transpiled to plain JS, and reports what it saw as JSON.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { isMulticastAddress } from "../../../src/ports/mcast-port.js";

const isRoot = process.getuid?.() === 0;
const haveIp = spawnSync("ip", ["-V"], { timeout: 5000 }).status === 0;
const required = process.env.USERNET_E2E === "required";
const canRun = isRoot && haveIp;
const haveQemu = spawnSync("qemu-system-x86_64", ["--version"], { timeout: 10_000 }).status === 0;

const ns = `unhub-${process.pid}-${randomBytes(3).toString("hex")}`;
const repo = resolve(import.meta.dirname, "../../..");
let work = "";
let nsCreated = false;

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { timeout: 10_000, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")} failed: ${r.stderr}`);
}

/** Transpiles `entries` and every module they import (relative imports) into `out`. */
async function transpileClosure(entries: string[], out: string): Promise<void> {
  const seen = new Set<string>();
  const queue = entries.map((e) => resolve(repo, e));
  for (let file = queue.pop(); file; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const source = await readFile(file, "utf8");
    for (const m of source.matchAll(/from "(\.{1,2}\/[^"]+)\.js"/g)) {
      queue.push(resolve(dirname(file), `${m[1]}.ts`));
    }
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const dest = join(out, relative(repo, file)).replace(/\.ts$/, ".js");
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, js);
  }
}

/** The scenario, run inside the namespace. Prints one JSON line. */
const scenario = `
import { createSocket } from "node:dgram";
import { spawn } from "node:child_process";
import { Hub } from "./src/hub/hub.js";
import { silentLogger } from "./src/log.js";
import { openNetdev } from "./src/ports/netdev.js";

const withQemu = process.argv[2] === "qemu";
let qemu;
const deadline = setTimeout(() => {
  qemu?.kill("SIGKILL");
  console.log(JSON.stringify({ error: "scenario timed out" }));
  process.exit(1);
}, 40000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond, ms = 5000) {
  const end = performance.now() + ms;
  while (!cond()) { if (performance.now() > end) return false; await sleep(10); }
  return true;
}
function tapOn(hub, name) {
  const tap = { name, kind: "fake", received: [], sink: undefined,
    send(frames) { this.received.push(...frames); }, setReceiver(s) { this.sink = s; },
    stats() { return {}; }, describe() { return name; }, close() {} };
  hub.attach(tap);
  return tap;
}
const frame = (tag, len = 60) => Buffer.alloc(len, tag);
const result = {};

// a member that behaves like QEMU's mcast socket: bound to the group port, sends from it
const group = "239.10.0.1", gport = 5555;
const q = createSocket({ type: "udp4", reuseAddr: true });
const qGot = [];
q.on("message", (m) => qGot.push(m[0]));
await new Promise((r) => q.bind(gport, group, r));
q.addMembership(group);
q.setMulticastLoopback(true);

const hub1 = new Hub(1), hub2 = new Hub(2);
const tap1 = tapOn(hub1, "tap1"), tap2 = tapOn(hub2, "tap2");
const m1 = await openNetdev({ type: "socket", id: "m1", hub: 1, mode: "mcast", addr: { host: group, port: gport } }, hub1, silentLogger);
const m2 = await openNetdev({ type: "dgram", id: "m2", hub: 2, remote: { type: "inet", host: group, port: gport }, local: { type: "inet", host: "127.0.0.1", port: 0 } }, hub2, silentLogger);
result.kinds = [m1.kind, m2.kind];
result.describe = m1.describe();
result.describe2 = m2.describe();

tap1.sink([frame(1)]);
result.qGotOurs = await waitFor(() => qGot.includes(1));
result.m2GotOurs = await waitFor(() => tap2.received.some((f) => f[0] === 1));
tap2.sink([frame(2, 1514)]);
await waitFor(() => qGot.includes(2) && tap1.received.some((f) => f[0] === 2));
q.send(frame(3), gport, group);
await waitFor(() => tap1.received.some((f) => f[0] === 3) && tap2.received.some((f) => f[0] === 3));
await sleep(200); // time for any echo to come back, which it must not
result.tap1 = tap1.received.map((f) => [f[0], f.length]);
result.tap2 = tap2.received.map((f) => [f[0], f.length]);
result.qGot = qGot;
result.m1Stats = m1.ports()[0].stats();
await m1.close(); await m2.close();
q.close();

if (withQemu) {
  // a real QEMU 7.2 with its slirp in another group answers ARP through our port
  const g2 = "239.10.0.2", p2 = 5556;
  qemu = spawn("qemu-system-x86_64", ["-machine", "none", "-nodefaults", "-display", "none",
    "-net", "user", "-net", "socket,mcast=" + g2 + ":" + p2], { stdio: "ignore" });
  const hub3 = new Hub(3);
  const tap3 = tapOn(hub3, "tap3");
  const m3 = await openNetdev({ type: "socket", id: "m3", hub: 3, mode: "mcast", addr: { host: g2, port: p2 }, localAddr: { host: "127.0.0.1", port: 0 } }, hub3, silentLogger);
  const mac = Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  const arp = Buffer.alloc(60); arp.fill(0xff, 0, 6); mac.copy(arp, 6); arp.writeUInt16BE(0x0806, 12);
  arp.writeUInt16BE(1, 14); arp.writeUInt16BE(0x0800, 16); arp[18] = 6; arp[19] = 4; arp.writeUInt16BE(1, 20);
  mac.copy(arp, 22); Buffer.from([10, 0, 2, 15]).copy(arp, 28); Buffer.from([10, 0, 2, 2]).copy(arp, 38);
  const isReply = (f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2 &&
    f.subarray(22, 28).equals(Buffer.from([0x52, 0x55, 10, 0, 2, 2]));
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) { tap3.sink([arp]); ok = await waitFor(() => tap3.received.some(isReply), 100); }
  result.qemuArpReply = ok;
  // QEMU hears its own frames; we must not hear ours: only slirp's replies reach tap3
  result.tap3NonReplies = tap3.received.filter((f) => !isReply(f)).length;
  await m3.close();
  qemu.kill("SIGKILL");
}
clearTimeout(deadline);
console.log(JSON.stringify(result));
process.exit(0);
`;

function runInNs(arg: string): Promise<Record<string, unknown>> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, join(work, "scenario.mjs"), arg], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").at(-1) ?? "";
      try {
        const r = JSON.parse(line) as Record<string, unknown>;
        if (code === 0) resolvePromise(r);
        else reject(new Error(`scenario exited ${code}: ${line} ${err}`));
      } catch {
        reject(new Error(`scenario exited ${code}, no result: ${out} ${err}`));
      }
    });
  });
}

describe("multicast port", () => {
  test("isMulticastAddress", () => {
    expect(isMulticastAddress("224.0.0.1")).toBe(true);
    expect(isMulticastAddress("239.255.255.255")).toBe(true);
    expect(isMulticastAddress("240.0.0.1")).toBe(false);
    expect(isMulticastAddress("10.0.2.2")).toBe(false);
    expect(isMulticastAddress("not-an-address")).toBe(false);
  });

  describe.skipIf(!canRun && !required)("inside a network namespace", () => {
    beforeAll(async () => {
      if (!canRun) throw new Error("USERNET_E2E=required: the multicast test needs root and iproute2");
      work = await mkdtemp(join(tmpdir(), "usernet-mcast-"));
      await writeFile(join(work, "package.json"), '{"type":"module"}\n');
      await transpileClosure(["src/ports/netdev.ts", "src/hub/hub.ts", "src/log.ts"], work);
      await writeFile(join(work, "scenario.mjs"), scenario);
      ip("netns", "add", ns);
      nsCreated = true;
      ip("netns", "exec", ns, "ip", "link", "set", "lo", "up");
      ip("netns", "exec", ns, "ip", "link", "set", "lo", "multicast", "on");
      ip("netns", "exec", ns, "ip", "route", "add", "224.0.0.0/4", "dev", "lo");
    }, 60_000);

    afterAll(async () => {
      if (nsCreated) ip("netns", "del", ns);
      if (work) await rm(work, { recursive: true, force: true });
    });

    test("QEMU-style members and another usernet hear our frames, we hear theirs, never our own", async () => {
      const r = await runInNs(haveQemu ? "qemu" : "");
      expect(r.error).toBeUndefined();
      expect(r.kinds).toEqual(["mcast", "mcast"]);
      expect(r.describe).toMatch(/^multicast 239\.10\.0\.1:5555, sending from this host port \d+$/);
      expect(r.describe2).toMatch(
        /^multicast 239\.10\.0\.1:5555 on 127\.0\.0\.1, sending from 127\.0\.0\.1 port \d+$/,
      );
      expect(r.qGotOurs).toBe(true);
      expect(r.m2GotOurs).toBe(true);
      // the QEMU-like member got frames 1, 2 (from the usernets) and its own 3 back
      expect(r.qGot).toEqual([1, 2, 3]);
      // each usernet hub got exactly the other members' frames, nothing of its own
      expect(r.tap1).toEqual([
        [2, 1514],
        [3, 60],
      ]);
      expect(r.tap2).toEqual([
        [1, 60],
        [3, 60],
      ]);
      expect((r.m1Stats as { drops: object }).drops).toEqual({});
      if (haveQemu) {
        expect(r.qemuArpReply).toBe(true);
        expect(r.tap3NonReplies).toBe(0);
      }
    }, 60_000);
  });
});
