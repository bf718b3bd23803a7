import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningApi, startApi } from "../../../src/api/server.js";
import { formatTable, portRequest, runCtl } from "../../../src/cli/ctl.js";
import { silentLogger } from "../../../src/log.js";
import { readPcap } from "../../../src/ports/pcap.js";
import { type FakeWorld, fakeWorld } from "../api/fake-facade.js";

let dir: string;
let socket: string;
let world: FakeWorld;
let api: RunningApi;
let tcp: RunningApi;
const token = "0123456789abcdef-token";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "usernet-ctl-"));
  socket = join(dir, "api.sock");
  world = fakeWorld();
  api = await startApi({ socket }, world.facade, silentLogger);
  tcp = await startApi({ listen: { host: "127.0.0.1", port: 0 }, token }, world.facade, silentLogger);
});
afterAll(async () => {
  await api.close();
  await tcp.close();
  rmSync(dir, { recursive: true, force: true });
});

async function ctl(args: string[], files: Record<string, string> = {}) {
  let out = "";
  let err = "";
  const code = await runCtl({
    argv: args,
    env: {},
    stdout: { write: (s: string | Buffer) => (out += s.toString()) },
    stderr: { write: (s: string) => (err += s) },
    readFile: (p) => {
      const t = files[p];
      if (t === undefined) throw new Error(`ENOENT ${p}`);
      return t;
    },
    onSignal: () => () => {},
  });
  return { code, out, err };
}

describe("usernet ctl", () => {
  it("status prints netdevs and ports as tables, or JSON", async () => {
    const r = await ctl(["--api", socket, "status"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usernet 9\.9\.9, up \d+\.\d s/);
    expect(r.out).toMatch(/^NETDEV +KIND +HUB +DESCRIPTION$/m);
    expect(r.out).toMatch(/^s0 +stream-listen +0 +listening$/m);
    expect(r.out).toMatch(/^PORT +KIND +HUB +NETDEV +RX-FRAMES/m);
    expect(r.out).toMatch(/^b +stream-listen +0 +s0 +\d+ +\d+ +\d+ +\d+ +2$/m);
    const j = await ctl(["--api", socket, "--json", "status"]);
    expect(JSON.parse(j.out).version).toBe("9.9.9");
  });

  it("hubs, leases, flows", async () => {
    expect((await ctl(["--api", socket, "hubs"])).out).toMatch(/^ *3 +1 +\d+ +\d+ +0 +c$/m);
    const leases = await ctl(["--api", socket, "leases"]);
    expect(leases.out).toMatch(/^user0 +10\.0\.2\.15 +52:54:00:12:34:56 +bound +guest +\d+ s$/m);
    const flows = await ctl(["--api", socket, "flows"]);
    expect(flows.out).toMatch(/^tcp +user0 +10\.0\.2\.15:40000 +10\.0\.2\.2:80 +open +100 +2000 +1\.5 s$/m);
  });

  it("forwards add, list, remove, and the API's refusals on stderr with exit 1", async () => {
    const add = await ctl(["--api", socket, "forwards", "add", "tcp::2222-:22"]);
    expect(add.code).toBe(0);
    expect(add.out).toMatch(/^ *1 +user0 +tcp +0\.0\.0\.0:2222 +10\.0\.2\.15:22 +0\.0\.0\.0:2222 +-$/m);
    const dup = await ctl(["--api", socket, "forwards", "add", "tcp::2222-:22"]);
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/^usernet ctl: conflict: tcp host port 2222/);
    const other = await ctl(["--api", socket, "forwards", "add", "udp::53-:53", "--netdev", "nope"]);
    expect(other.err).toMatch(/invalid: no user netdev nope/);
    expect((await ctl(["--api", socket, "forwards"])).out).toMatch(/^ *1 +user0 +tcp/m);
    expect((await ctl(["--api", socket, "forwards", "remove", "1"])).out).toBe("removed forward 1\n");
    const gone = await ctl(["--api", socket, "forwards", "remove", "1"]);
    expect(gone).toMatchObject({ code: 1, err: expect.stringMatching(/not-found/) });
  });

  it("bad command lines exit 2", async () => {
    for (const args of [
      ["--api", socket],
      ["--api", socket, "frobnicate"],
      ["--api", socket, "forwards", "add", "tcp:2222-:22"],
      ["--api", socket, "forwards", "remove", "x"],
      ["--api", socket, "status", "extra"],
      ["--api", socket, "--api-url", "http://127.0.0.1:1", "status"],
      ["--api-url", "http://127.0.0.1:1", "status"],
      ["--api", socket, "capture", "0"],
      ["--api", socket, "capture", "0", "f", "--count", "0"],
      ["--bogus"],
    ]) {
      const r = await ctl(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err).toMatch(/^usernet ctl: /);
    }
    expect((await ctl(["--help"])).out).toMatch(/^usage: usernet ctl/);
  });

  it("a missing API is exit 1 with a hint", async () => {
    const r = await ctl(["--api", join(dir, "none.sock"), "status"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot reach the API on unix socket .*none\.sock: ENOENT \(is usernet running/);
  });

  it("reaches a TCP API with a token file", async () => {
    const url = tcp.addresses[0] as string;
    const ok = await ctl(["--api-url", url, "--token-file", "/t", "hubs"], { "/t": `${token}\n` });
    expect(ok.code).toBe(0);
    const bad = await ctl(["--api-url", url, "--token-file", "/t", "hubs"], { "/t": "wrong\n" });
    expect(bad).toMatchObject({ code: 1, err: expect.stringMatching(/unauthorized/) });
  });

  it("capture writes a pcap file", async () => {
    const file = join(dir, "hub0.pcap");
    const pending = ctl(["--api", socket, "capture", "0", file, "--count", "2"]);
    for (
      let i = 0;
      i < 200 &&
      !world.hubs
        .get(0)
        .ports()
        .some((p) => p.kind === "capture");
      i++
    ) {
      await new Promise((r) => setTimeout(r, 5));
    }
    world.ports[0]?.emit([Buffer.alloc(60, 1), Buffer.alloc(80, 2)]);
    const r = await pending;
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/bytes of pcap written to/);
    const pcap = readPcap(readFileSync(file));
    expect(pcap.ok && pcap.value.map((p) => p.data.length)).toEqual([60, 80]);
    const missing = await ctl(["--api", socket, "capture", "9", file]);
    expect(missing).toMatchObject({ code: 1, err: expect.stringMatching(/not-found: there is no hub 9/) });
  });

  it("formatTable pads columns and right-aligns numbers", () => {
    expect(
      formatTable(
        ["A", "N"],
        [
          ["x", 1],
          ["long", 100],
        ],
      ),
    ).toBe("A       N\nx       1\nlong  100\n");
  });
});

describe("ports add NETDEV", () => {
  it("turns -netdev syntax into the API's port request on the hub hubid= names", () => {
    expect(portRequest("vxlan,id=vx1,hubid=2,vni=5,remote=10.0.0.1,local=10.0.0.2")).toEqual({
      hub: 2,
      body: {
        type: "vxlan",
        id: "vx1",
        vni: 5,
        remotes: [{ host: "10.0.0.1", port: 4789 }],
        local: { host: "10.0.0.2", port: 4789 },
        dstport: 4789,
      },
    });
    expect(() => portRequest("user,id=u9")).toThrow(
      "ctl: ports add user,...: only socket, stream, dgram and vxlan",
    );
  });
});
