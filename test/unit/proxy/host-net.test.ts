import net from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type HostTcpEvent, nodeHostNet } from "../../../src/proxy/host-net.js";

const servers: net.Server[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const s of servers.splice(0)) s.close();
});

async function echoServer(): Promise<number> {
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
    const port = await echoServer();
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
    const port = await echoServer();
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
