/**
 * host-net.ts against real sockets on the host's loopback: TCP connect time-outs, and
 * the UDP sockets whose reports the NAT's fake in udp-nat.test.ts must imitate.
 */
import dgram from "node:dgram";
import net from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { nativeStatus } from "../../../src/native/binding.js";
import {
  type HostTcpEvent,
  type HostUdp,
  type HostUdpEvent,
  nodeHostNet,
} from "../../../src/proxy/host-net.js";

const servers: net.Server[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const s of servers.splice(0)) s.close();
});

async function tcpEchoServer(): Promise<number> {
  const server = net.createServer((c) => {
    c.on("error", () => {});
    c.pipe(c);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

describe("nodeHostNet.connectTcp", () => {
  it("gives up on a connect still pending at its time-out (ETIMEDOUT)", async () => {
    const port = await tcpEchoServer();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const events: HostTcpEvent[] = [];
    nodeHostNet.connectTcp({ address: "127.0.0.1", port }, undefined, 5_000, (e) => events.push(e));
    // no turn of the event loop in between: the connect cannot have completed
    vi.advanceTimersByTime(4_999);
    expect(events).toEqual([]);
    vi.advanceTimersByTime(1);
    vi.useRealTimers();
    await vi.waitFor(() => expect(events).toContainEqual({ type: "connect-failed", code: "ETIMEDOUT" }));
  });

  it("leaves connected sockets alone when their time-out passes, under one shared timer", async () => {
    const port = await tcpEchoServer();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const conns = Array.from({ length: 100 }, () => {
      const events: HostTcpEvent[] = [];
      const sock = nodeHostNet.connectTcp({ address: "127.0.0.1", port }, undefined, 7_000, (e) => {
        if (e.type !== "data") events.push(e);
        else events.push({ type: "data", data: Buffer.from(e.data) });
      });
      return { events, sock };
    });
    expect(vi.getTimerCount()).toBe(1);
    await vi.waitFor(() => {
      for (const c of conns) expect(c.events).toContainEqual({ type: "connected" });
    });
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10_000);
    const last = conns[99];
    last?.sock.write(Buffer.from("still up"), () => {});
    await vi.waitFor(() =>
      expect(last?.events.at(-1)).toEqual({ type: "data", data: Buffer.from("still up") }),
    );
    for (const c of conns) {
      expect(c.events.some((e) => e.type === "connect-failed" || e.type === "error")).toBe(false);
      c.sock.reset();
    }
  });
});

const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function udpEchoServer(): Promise<number> {
  const s = dgram.createSocket("udp4");
  open.push(s);
  s.on("message", (m, r) => s.send(m, r.port, r.address));
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  return s.address().port;
}

/** A loopback port nobody listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function socket(): { udp: HostUdp; next: () => Promise<HostUdpEvent> } {
  const queue: HostUdpEvent[] = [];
  let wake: (() => void) | undefined;
  const udp = nodeHostNet.bindUdp("127.0.0.1", (e) => {
    queue.push(e);
    wake?.();
  });
  open.push(udp);
  const next = async (): Promise<HostUdpEvent> => {
    const deadline = Date.now() + 3000;
    while (queue.length === 0) {
      if (Date.now() > deadline) throw new Error("no event within 3 s");
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100).unref();
      });
    }
    return queue.shift() as HostUdpEvent;
  };
  return { udp, next };
}

describe.skipIf(!nativeStatus().available)("nodeHostNet UDP (native, IP_RECVERR)", () => {
  it("sends and receives datagrams, with their source", async () => {
    const port = await udpEchoServer();
    const { udp, next } = socket();
    const payload = Buffer.from("ping over loopback");
    udp.send(payload, "127.0.0.1", port);
    payload.fill(0); // the socket has sent it already: reusing the memory is allowed
    expect(await next()).toEqual({
      type: "datagram",
      data: Buffer.from("ping over loopback"),
      from: { address: "127.0.0.1", port },
    });
  });

  it("reports the host's port unreachable for the destination it concerns, and keeps working", async () => {
    const [open, closed] = [await udpEchoServer(), await closedPort()];
    const { udp, next } = socket();
    udp.send(Buffer.from("to nobody"), "127.0.0.1", closed);
    // on loopback the ICMP error is in before send returns: it is pending (sk_err) now,
    // and must not make the next datagram fail in its place
    udp.send(Buffer.from("still here"), "127.0.0.1", open);
    const events = [await next(), await next()];
    expect(events).toContainEqual({
      type: "icmp",
      to: { address: "127.0.0.1", port: closed },
      icmpType: 3,
      icmpCode: 3,
      reporter: "127.0.0.1",
      length: 9,
    });
    expect(events).toContainEqual({
      type: "datagram",
      data: Buffer.from("still here"),
      from: { address: "127.0.0.1", port: open },
    });
  });
});
