import net from "node:net";
import { describe, expect, it } from "vitest";
import type { Logger } from "../../../src/log.js";
import { commandAsHostTcp, GuestForwarder } from "../../../src/proxy/guest-forward.js";
import type { HostTcpEvent } from "../../../src/proxy/host-net.js";
import { nodeHostNet } from "../../../src/proxy/host-net.js";
import type { GuestTcp } from "../../../src/proxy/tcp-relay.js";
import { parseIpv4 } from "../../../src/stack/wire/addr.js";

const lines: string[] = [];
const log: Logger = {
  debug() {},
  info: (m) => lines.push(m),
  warn: (m) => lines.push(m),
  error: (m) => lines.push(m),
  child: () => log,
};

const ip = (s: string) => parseIpv4(s) ?? 0;

/** A guest connection that records what the relay does with it. */
class Guest implements GuestTcp {
  readonly guestAddr = ip("10.0.2.15");
  readonly guestPort = 40000;
  accepted = 0;
  refused = 0;
  aborted = 0;
  shutdowns = 0;
  received: Buffer[] = [];
  constructor(
    readonly remoteAddr: number,
    readonly remotePort: number,
  ) {}
  accept() {
    this.accepted++;
  }
  refuse() {
    this.refused++;
  }
  write(data: Buffer) {
    this.received.push(Buffer.from(data));
    return data.length;
  }
  consume() {}
  shutdownWrite() {
    this.shutdowns++;
  }
  abort() {
    this.aborted++;
  }
  text() {
    return Buffer.concat(this.received).toString();
  }
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

function collect() {
  const events: HostTcpEvent[] = [];
  const data = () => Buffer.concat(events.flatMap((e) => (e.type === "data" ? [e.data] : []))).toString();
  return { events, data, push: (e: HostTcpEvent) => events.push(e) };
}

describe("commandAsHostTcp", () => {
  it("carries bytes through a command's stdin and stdout, then ends and closes", async () => {
    const c = collect();
    const t = commandAsHostTcp("tr a-z A-Z", log, c.push);
    await until(() => c.events.some((e) => e.type === "connected"));
    let written = false;
    t.write(Buffer.from("hello guest\n"), () => {
      written = true;
    });
    t.end();
    await until(() => c.events.some((e) => e.type === "closed"));
    expect(written).toBe(true);
    expect(c.data()).toBe("HELLO GUEST\n");
    expect(c.events.map((e) => e.type).filter((t) => t !== "data")).toEqual(["connected", "end", "closed"]);
  });

  it("logs the command's stderr line by line", async () => {
    const c = collect();
    lines.length = 0;
    commandAsHostTcp("echo first >&2; echo second >&2", log, c.push);
    await until(() => c.events.some((e) => e.type === "closed"));
    expect(lines).toEqual(["stderr: first", "stderr: second"]);
  });

  it("a reset stops a command that would run on", async () => {
    const c = collect();
    const t = commandAsHostTcp("sleep 30", log, c.push);
    await until(() => c.events.some((e) => e.type === "connected"));
    const start = Date.now();
    t.reset();
    await until(() => c.events.some((e) => e.type === "closed"));
    expect(Date.now() - start).toBeLessThan(3000);
  });

  it("writes after the command stopped reading are dropped, not thrown", async () => {
    const c = collect();
    const t = commandAsHostTcp("exec 0<&-; echo bye", log, c.push);
    await until(() => c.events.some((e) => e.type === "closed"));
    let done = 0;
    for (let i = 0; i < 3; i++) t.write(Buffer.alloc(100_000), () => done++);
    await until(() => done === 3);
    expect(c.data()).toBe("bye\n");
  });
});

describe("GuestForwarder", () => {
  it("owns exactly its server:port pairs", () => {
    const g = new GuestForwarder(
      [{ proto: "tcp", server: "10.0.2.100", port: 1234, target: { kind: "cmd", command: "cat" } }],
      { gateway: ip("10.0.2.2"), hostNet: nodeHostNet, log, now: () => 0 },
    );
    expect(g.owns(ip("10.0.2.100"), 1234)).toBe(true);
    expect(g.owns(ip("10.0.2.100"), 1235)).toBe(false);
    expect(g.owns(ip("10.0.2.101"), 1234)).toBe(false);
  });

  it("a guest connection to a cmd: target is accepted once the command runs, and carries data both ways", async () => {
    const g = new GuestForwarder(
      [{ proto: "tcp", server: "10.0.2.100", port: 1234, target: { kind: "cmd", command: "cat" } }],
      { gateway: ip("10.0.2.2"), hostNet: nodeHostNet, log, now: () => 0 },
    );
    const conn = new Guest(ip("10.0.2.100"), 1234);
    g.event(conn, { type: "connect-request" });
    await until(() => conn.accepted === 1);
    g.event(conn, { type: "established" });
    g.event(conn, { type: "data", data: Buffer.from("round trip") });
    g.event(conn, { type: "eof" });
    await until(() => conn.shutdowns === 1);
    expect(conn.text()).toBe("round trip");
    g.closeAll();
  });

  it("a tcp: target gets the guest's bytes and answers; a refusing one resets the guest", async () => {
    const server = net.createServer((s) => {
      s.on("error", () => {});
      s.on("data", (d) => s.end(`got ${d}`));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    try {
      const g = new GuestForwarder(
        [
          { proto: "tcp", server: "10.0.2.100", port: 80, target: { kind: "tcp", host: "127.0.0.1", port } },
          {
            proto: "tcp",
            server: "10.0.2.100",
            port: 81,
            target: { kind: "tcp", host: "127.0.0.1", port: deadPort },
          },
        ],
        { gateway: ip("10.0.2.2"), hostNet: nodeHostNet, log, now: () => 0 },
      );
      const conn = new Guest(ip("10.0.2.100"), 80);
      g.event(conn, { type: "connect-request" });
      await until(() => conn.accepted === 1);
      g.event(conn, { type: "established" });
      g.event(conn, { type: "data", data: Buffer.from("ping") });
      await until(() => conn.shutdowns === 1);
      expect(conn.text()).toBe("got ping");

      const dead = new Guest(ip("10.0.2.100"), 81);
      g.event(dead, { type: "connect-request" });
      await until(() => dead.refused === 1);
      expect(dead.accepted).toBe(0);
      g.closeAll();
    } finally {
      server.close();
    }
  });

  it("refuses past the limit of running commands", async () => {
    const g = new GuestForwarder(
      [{ proto: "tcp", server: "10.0.2.100", port: 1, target: { kind: "cmd", command: "sleep 30" } }],
      { gateway: ip("10.0.2.2"), hostNet: nodeHostNet, log, now: () => 0, maxCommands: 1 },
    );
    const a = new Guest(ip("10.0.2.100"), 1);
    const b = new Guest(ip("10.0.2.100"), 1);
    g.event(a, { type: "connect-request" });
    g.event(b, { type: "connect-request" });
    await until(() => a.accepted === 1 && b.refused === 1);
    g.closeAll();
  });
});
