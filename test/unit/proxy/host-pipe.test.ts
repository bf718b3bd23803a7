import { describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../../src/log.js";
import type { HostEndpoint, HostNet, HostTcp, HostTcpEvent } from "../../../src/proxy/host-net.js";
import { hostPipe } from "../../../src/proxy/host-pipe.js";
import { LocalTcpService } from "../../../src/proxy/local-tcp-service.js";
import { FakeGuestTcp } from "./fake-guest-tcp.js";

class FakeSocket implements HostTcp {
  written: Buffer[] = [];
  pending: (() => void)[] = [];
  ended = 0;
  resets = 0;
  paused = false;
  constructor(
    readonly to: HostEndpoint,
    readonly emit: (e: HostTcpEvent) => void,
  ) {}
  write(data: Buffer, done: () => void): void {
    this.written.push(Buffer.from(data));
    this.pending.push(done);
  }
  end(): void {
    this.ended++;
  }
  reset(): void {
    this.resets++;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

function setup(target: () => Promise<HostEndpoint>, room?: number) {
  const sockets: FakeSocket[] = [];
  const hostNet = {
    connectTcp(to: HostEndpoint, _local: string | undefined, _t: number, events: (e: HostTcpEvent) => void) {
      const s = new FakeSocket(to, events);
      sockets.push(s);
      return s;
    },
  } as unknown as HostNet;
  const svc = new LocalTcpService(
    { name: "smb", open: hostPipe({ hostNet, target, log: silentLogger }) },
    silentLogger,
  );
  const c = new FakeGuestTcp(0x0a000204, 445, room);
  svc.event(c, { type: "connect-request" });
  return { svc, c, sockets };
}

describe("hostPipe", () => {
  it("answers the guest only once the target connected, then carries bytes both ways", async () => {
    const { svc, c, sockets } = setup(async () => ({ address: "127.0.0.1", port: 40001 }));
    await vi.waitFor(() => expect(sockets.length).toBe(1));
    expect(sockets[0]?.to).toEqual({ address: "127.0.0.1", port: 40001 });
    expect(c.accepted).toBe(0);
    const s = sockets[0] as FakeSocket;
    s.emit({ type: "connected" });
    await vi.waitFor(() => expect(c.accepted).toBe(1));
    svc.event(c, { type: "established" });
    svc.event(c, { type: "data", data: Buffer.from("negotiate") });
    expect(Buffer.concat(s.written).toString()).toBe("negotiate");
    expect(c.consumed).toBe(0);
    s.pending[0]?.();
    expect(c.consumed).toBe(9);
    s.emit({ type: "data", data: Buffer.from("response") });
    expect(c.output().toString()).toBe("response");
    // orderly close both ways: no reset of the host socket
    svc.event(c, { type: "eof" });
    expect(s.ended).toBe(1);
    s.emit({ type: "end" });
    expect(c.shutdowns).toBe(1);
    svc.event(c, { type: "closed" });
    expect(s.resets).toBe(0);
  });

  it("pauses the host socket while the guest is slow", async () => {
    const { svc, c, sockets } = setup(async () => ({ address: "127.0.0.1", port: 1 }), 4);
    await vi.waitFor(() => expect(sockets.length).toBe(1));
    const s = sockets[0] as FakeSocket;
    s.emit({ type: "connected" });
    await vi.waitFor(() => expect(c.accepted).toBe(1));
    svc.event(c, { type: "established" });
    s.emit({ type: "data", data: Buffer.from("0123456789") });
    expect(s.paused).toBe(true);
    c.room = 100;
    svc.event(c, { type: "writable" });
    expect(s.paused).toBe(false);
    expect(c.output().toString()).toBe("0123456789");
  });

  it("refuses the guest when the target fails or refuses, and resets the host on a guest reset", async () => {
    const failed = setup(async () => {
      throw new Error("smbd did not start");
    });
    await vi.waitFor(() => expect(failed.c.refused).toBe(1));
    expect(failed.sockets.length).toBe(0);

    const refused = setup(async () => ({ address: "127.0.0.1", port: 1 }));
    await vi.waitFor(() => expect(refused.sockets.length).toBe(1));
    refused.sockets[0]?.emit({ type: "connect-failed", code: "ECONNREFUSED" });
    await vi.waitFor(() => expect(refused.c.refused).toBe(1));

    const { svc, c, sockets } = setup(async () => ({ address: "127.0.0.1", port: 1 }));
    await vi.waitFor(() => expect(sockets.length).toBe(1));
    const s = sockets[0] as FakeSocket;
    s.emit({ type: "connected" });
    await vi.waitFor(() => expect(c.accepted).toBe(1));
    svc.event(c, { type: "reset", reason: "guest" });
    expect(s.resets).toBe(1);
    // and a host reset resets the guest
    const other = setup(async () => ({ address: "127.0.0.1", port: 1 }));
    await vi.waitFor(() => expect(other.sockets.length).toBe(1));
    other.sockets[0]?.emit({ type: "connected" });
    await vi.waitFor(() => expect(other.c.accepted).toBe(1));
    other.sockets[0]?.emit({ type: "error", code: "ECONNRESET" });
    expect(other.c.aborted).toBe(1);
  });
});
