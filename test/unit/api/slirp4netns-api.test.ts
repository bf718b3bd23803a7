import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { handleSlirp4netnsRequest, startSlirp4netnsApi } from "../../../src/api/slirp4netns-api.js";
import type { HostForward } from "../../../src/config.js";
import { ForwardError, type ForwardsFacade, type ForwardView } from "../../../src/usernet.js";

/** A facade that keeps rules in memory, refuses a second rule on a host port, never reuses ids. */
class FakeForwards implements ForwardsFacade {
  views: ForwardView[] = [];
  added: { netdev: string | undefined; rule: HostForward }[] = [];
  private next = 1;
  list() {
    return this.views;
  }
  async add(netdev: string | undefined, rule: HostForward) {
    if (this.views.some((v) => v.proto === rule.proto && v.hostPort === rule.hostPort)) {
      throw new ForwardError("conflict", "taken");
    }
    this.added.push({ netdev, rule });
    const v: ForwardView = {
      id: this.next++,
      netdev: netdev ?? "u0",
      proto: rule.proto,
      hostAddr: rule.hostAddr || "0.0.0.0",
      hostPort: rule.hostPort,
      guestAddr: rule.guestAddr || "10.0.2.15",
      guestPort: rule.guestPort,
      preserveSource: false,
    };
    this.views.push(v);
    return v;
  }
  async remove(id: number) {
    const n = this.views.length;
    this.views = this.views.filter((v) => v.id !== id);
    return this.views.length < n;
  }
}

const ask = (f: ForwardsFacade, req: unknown, opts = {}) =>
  handleSlirp4netnsRequest(typeof req === "string" ? req : JSON.stringify(req), f, opts);

describe("slirp4netns API requests", () => {
  it("add, list and remove answer exactly as slirp4netns 1.2 does", async () => {
    const f = new FakeForwards();
    expect(
      await ask(
        f,
        {
          execute: "add_hostfwd",
          arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: 8080, guest_port: 80 },
        },
        { defaultGuestAddr: "10.0.2.100" },
      ),
    ).toBe('{"return":{"id":1}}');
    expect(f.added[0]?.rule).toEqual({
      proto: "tcp",
      hostAddr: "127.0.0.1",
      hostPort: 8080,
      guestAddr: "10.0.2.100",
      guestPort: 80,
    });
    expect(
      await ask(f, { execute: "add_hostfwd", arguments: { proto: "udp", host_port: 5353, guest_port: 53 } }),
    ).toBe('{"return":{"id":2}}');
    // no defaultGuestAddr: the netdev's first DHCP address (the facade's "")
    expect(f.added[1]?.rule).toMatchObject({ hostAddr: "", guestAddr: "" });
    expect(await ask(f, { execute: "list_hostfwd" })).toBe(
      '{"entries":[{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80},' +
        '{"id":2,"proto":"udp","host_addr":"0.0.0.0","host_port":5353,"guest_addr":"10.0.2.15","guest_port":53}]}',
    );
    expect(await ask(f, { execute: "remove_hostfwd", arguments: { id: 1 } })).toBe('{"return":{}}');
    expect(await ask(f, { execute: "remove_hostfwd", arguments: { id: 1 } })).toBe(
      '{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}',
    );
  });

  it("takes IPv6 addresses (slirp4netns itself cannot): kept in RFC 5952 form, listed as given", async () => {
    const f = new FakeForwards();
    const add = (args: Record<string, unknown>) =>
      ask(f, { execute: "add_hostfwd", arguments: args }, { defaultGuestAddr: "10.0.2.100" });
    expect(
      await add({
        proto: "tcp",
        host_addr: "::1",
        host_port: 8080,
        guest_addr: "FD00:0::100",
        guest_port: 80,
      }),
    ).toBe('{"return":{"id":1}}');
    // an IPv6 listener to the IPv4 --configure address when no guest address is given
    expect(await add({ proto: "tcp", host_addr: "::", host_port: 8081, guest_port: 80 })).toBe(
      '{"return":{"id":2}}',
    );
    expect(f.added.map((a) => [a.rule.hostAddr, a.rule.guestAddr])).toEqual([
      ["::1", "fd00::100"],
      ["::", "10.0.2.100"],
    ]);
    expect(await ask(f, { execute: "list_hostfwd" })).toContain(
      '{"id":1,"proto":"tcp","host_addr":"::1","host_port":8080,"guest_addr":"fd00::100","guest_port":80}',
    );
    expect(await add({ proto: "tcp", host_addr: "::1::2", host_port: 8082, guest_port: 80 })).toBe(
      '{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_addr"}}',
    );
  });

  it("answers errors with slirp4netns's messages", async () => {
    const f = new FakeForwards();
    const add = (args: Record<string, unknown>) => ask(f, { execute: "add_hostfwd", arguments: args });
    expect(await ask(f, "{not json")).toBe('{"error":{"desc":"bad request: cannot parse JSON"}}');
    expect(await ask(f, "[1]")).toBe('{"error":{"desc":"bad request: json_object() failed"}}');
    expect(await ask(f, {})).toBe('{"error":{"desc":"bad request: no execute found"}}');
    expect(await ask(f, { execute: "frobnicate" })).toBe('{"error":{"desc":"bad request: unknown execute"}}');
    expect(await add({ host_port: 1, guest_port: 1 })).toBe(
      '{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}',
    );
    expect(await add({ proto: "tcp", host_addr: "x", host_port: 1, guest_port: 1 })).toBe(
      '{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_addr"}}',
    );
    // slirp4netns takes 70000 and lists it; we do not
    expect(await add({ proto: "tcp", host_port: 70000, guest_port: 80 })).toBe(
      '{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_port"}}',
    );
    expect(await add({ proto: "tcp", host_port: 8080, guest_addr: "10.0.2", guest_port: 80 })).toBe(
      '{"error":{"desc":"bad request: add_hostfwd: bad arguments.guest_addr"}}',
    );
    expect(await add({ proto: "tcp", host_port: 8080, guest_port: 0 })).toBe(
      '{"error":{"desc":"bad request: add_hostfwd: bad arguments.guest_port"}}',
    );
    expect(f.added).toEqual([]);
    expect(await add({ proto: "tcp", host_port: 8080, guest_port: 80 })).toBe('{"return":{"id":1}}');
    expect(await add({ proto: "tcp", host_port: 8080, guest_port: 81 })).toBe(
      '{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}',
    );
  });
});

describe("slirp4netns API socket", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const socketPath = () => {
    const d = mkdtempSync(join(tmpdir(), "usernet-api-"));
    dirs.push(d);
    return join(d, "api.sock");
  };

  /** What rootlesskit does: write, shut down the write side, read to the end. */
  function request(path: string, text: string, halfClose = true): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path, () => (halfClose ? s.end(text) : s.write(text)));
      let out = "";
      s.on("data", (d) => {
        out += d;
      });
      s.on("end", () => resolve(out));
      s.on("error", reject);
    });
  }

  it("serves one request per connection, mode 0600, and removes the socket on close", async () => {
    const path = socketPath();
    const f = new FakeForwards();
    const api = await startSlirp4netnsApi(path, f, { defaultGuestAddr: "10.0.2.100" });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(
      await request(
        path,
        '{"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_port": 8080, "guest_port": 80}}',
      ),
    ).toBe('{"return":{"id":1}}');
    // a client that does not half-close gets its answer once the JSON is whole
    expect(await request(path, '{"execute": "list_hostfwd"}', false)).toMatch(/^\{"entries":\[\{"id":1,/);
    expect(await request(path, "{oops")).toBe('{"error":{"desc":"bad request: cannot parse JSON"}}');
    expect(await request(path, "x".repeat(5000))).toBe('{"error":{"desc":"bad request: too large message"}}');
    await api.close();
    expect(() => statSync(path)).toThrow();
  });

  it("replaces a stale socket but nothing else", async () => {
    const path = socketPath();
    // a crashed process leaves its socket file behind
    spawnSync(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    expect(statSync(path).isSocket()).toBe(true);
    writeFileSync(`${path}.file`, "");
    const api = await startSlirp4netnsApi(path, new FakeForwards());
    expect(await request(path, '{"execute":"list_hostfwd"}')).toBe('{"entries":[]}');
    await api.close();
    await expect(startSlirp4netnsApi(`${path}.file`, new FakeForwards())).rejects.toThrow(/not a socket/);
  });

  it("leaves a live socket alone: refuses to start rather than take its path", async () => {
    const path = socketPath();
    // the stale-socket probe hangs up at once: its reset is no failure of this server
    const live = net.createServer((s) => {
      s.on("error", () => {});
      s.end("still here");
    });
    await new Promise<void>((resolve) => live.listen(path, resolve));
    try {
      await expect(startSlirp4netnsApi(path, new FakeForwards())).rejects.toThrow(
        /--api-socket .*: another process is listening/,
      );
      expect(statSync(path).isSocket()).toBe(true);
      const answer = await new Promise<string>((resolve, reject) => {
        const c = net.createConnection(path);
        let got = "";
        c.on("data", (d) => {
          got += d;
        });
        c.on("end", () => resolve(got));
        c.on("error", reject);
      });
      expect(answer).toBe("still here");
    } finally {
      await new Promise<void>((resolve) => live.close(() => resolve()));
    }
  });
});
