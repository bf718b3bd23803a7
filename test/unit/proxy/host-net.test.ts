/**
 * host-net.ts's UDP sockets, real ones on the host's loopback: what they report is what
 * the NAT's fake in udp-nat.test.ts must imitate.
 */
import dgram from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { nativeStatus } from "../../../src/native/binding.js";
import { type HostUdp, type HostUdpEvent, nodeHostNet } from "../../../src/proxy/host-net.js";

const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function echoServer(): Promise<number> {
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
    const port = await echoServer();
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
    const [open, closed] = [await echoServer(), await closedPort()];
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
