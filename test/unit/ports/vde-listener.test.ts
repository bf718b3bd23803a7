/**
 * VdeListener with clients made by hand (a stream to DIR/ctl, a datagram socket from
 * the native addon): the handshake's answer, frames through a client's port, what it
 * makes on disk and removes, and untrusted control bytes (malformed, random) that are
 * counted and cost nothing but that connection.
 */

import { lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fc } from "@fast-check/vitest";
import { afterEach, expect, it } from "vitest";
import { Hub } from "../../../src/hub/hub.js";
import { silentLogger } from "../../../src/log.js";
import { closeFd, connectUnixDgram, FdPoller, openUnixDgram } from "../../../src/native/binding.js";
import { VdeListener } from "../../../src/ports/vde-listener.js";
import { decodeSockaddrUn, encodeVdeRequest } from "../../../src/ports/vde-wire.js";
import { describeWith } from "../native/native-env.js";
import { FakePort, waitFor } from "./fake-port.js";

const frame = (n: number) => Buffer.alloc(60, n);

describeWith("VdeListener", ["addon"], () => {
  let dir = "";
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(opts: { maxClients?: number } = {}) {
    dir = mkdtempSync(join(tmpdir(), "unvdel-"));
    const sw = join(dir, "sw");
    const hub = new Hub(0);
    const peer = new FakePort("peer");
    hub.attach(peer);
    const listener = await VdeListener.open({ id: "v0", dir: sw, hub, log: silentLogger, ...opts });
    cleanups.push(() => listener.close());
    return { sw, hub, peer, listener };
  }

  /** a control stream that has sent `bytes`; resolves with what came back before it closed or 300 ms passed */
  function raw(sw: string, bytes: Buffer): Promise<{ reply: Buffer; closed: boolean; ctl: Socket }> {
    return new Promise((resolve) => {
      const ctl = connect({ path: join(sw, "ctl") });
      cleanups.push(() => ctl.destroy());
      const got: Buffer[] = [];
      let closed = false;
      const done = () => resolve({ reply: Buffer.concat(got), closed, ctl });
      const timer = setTimeout(done, 300);
      ctl.on("data", (c) => got.push(c));
      ctl.on("error", () => undefined);
      ctl.on("close", () => {
        closed = true;
        clearTimeout(timer);
        done();
      });
      ctl.on("connect", () => ctl.write(bytes));
    });
  }

  /** what libvdeplug does: bind, request, connect to the answer */
  async function client(sw: string, n: number) {
    const path = join(dir, `client${n}`);
    const fd = openUnixDgram(path);
    const got: Buffer[] = [];
    const poller = new FdPoller(fd, "frames", (f) => got.push(...f));
    cleanups.push(() => poller.close());
    const { reply, ctl } = await raw(
      sw,
      encodeVdeRequest({ kind: "control", port: 0, path, description: "t" }),
    );
    const answer = decodeSockaddrUn(reply);
    if (!answer.ok) throw new Error(`no answer: ${answer.reason}`);
    connectUnixDgram(fd, answer.value);
    return { got, poller, ctl, answer: answer.value };
  }

  it("answers the handshake with a socket of its own and carries the client's frames; private files, removed on close", async () => {
    const { sw, peer, listener } = await open();
    expect(statSync(sw).mode & 0o777).toBe(0o700);
    expect(statSync(join(sw, "ctl")).mode & 0o777).toBe(0o600);
    const c = await client(sw, 1);
    expect(c.answer).toBe(join(sw, "001.port"));
    expect(statSync(c.answer).mode & 0o777).toBe(0o600);
    expect(listener.ports().map((p) => [p.name, p.kind])).toEqual([["v0#1", "vde-listen"]]);
    c.poller.write([frame(1)]);
    peer.sink?.([frame(2)]);
    await waitFor("frames both ways", () => peer.received.length === 1 && c.got.length === 1);
    expect([peer.received[0]?.[0], c.got[0]?.[0]]).toEqual([1, 2]);

    // the client's control stream ends: its port goes, and its socket file
    c.ctl.destroy();
    await waitFor("the port to go", () => listener.ports().length === 0);
    await waitFor("its socket file to go", () => !exists(c.answer));
    await listener.close();
    expect(exists(sw)).toBe(false);
  });

  it("a client's port closed by someone else (the API) ends that client: its control stream closes", async () => {
    const { sw, hub, listener } = await open();
    const c = await client(sw, 1);
    let ended = false;
    c.ctl.on("close", () => {
      ended = true;
    });
    const port = listener.ports()[0];
    if (!port) throw new Error("no port");
    hub.detach(port);
    port.close();
    expect(listener.ports()).toEqual([]);
    await waitFor("the client's control stream to close", () => ended);
    await waitFor("its socket file to go", () => !exists(c.answer));
  });

  it("counts malformed requests and closes only those connections", async () => {
    const { sw, listener } = await open();
    const badMagic = await raw(sw, Buffer.alloc(8, 0x55));
    expect(badMagic.closed).toBe(true);
    const good = encodeVdeRequest({
      kind: "control",
      port: 0,
      path: join(dir, "nobody-here"),
      description: "",
    });
    const noSocket = await raw(sw, good);
    expect(noSocket.closed).toBe(true);
    const v1 = Buffer.from(good);
    v1.writeUInt32LE(1, 4);
    expect((await raw(sw, v1)).closed).toBe(true);
    expect(listener.stats().failed).toEqual({
      "request-bad-magic": 1,
      "client-socket-inaccessible": 1,
      "request-bad-version": 1,
    });
    expect(listener.describe()).toContain("3 bad handshakes");
    // and the next good client is served
    await client(sw, 1);
    expect(listener.ports()).toHaveLength(1);
  });

  it("random control bytes never take the listener down", async () => {
    const { sw, listener } = await open();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (a) => {
        const r = await raw(sw, Buffer.from(a));
        r.ctl.destroy();
      }),
      { numRuns: 20 },
    );
    await client(sw, 1);
    expect(listener.ports()).toHaveLength(1);
    expect(listener.stats().accepted).toBe(1);
  });

  it("refuses clients past maxClients", async () => {
    const { sw, listener } = await open({ maxClients: 1 });
    await client(sw, 1);
    const second = await raw(sw, Buffer.alloc(0));
    expect(second.closed).toBe(true);
    expect(listener.stats()).toMatchObject({ active: 1, rejected: 1 });
  });

  it("takes over a stale ctl socket, refuses a path that is not a directory", async () => {
    dir = mkdtempSync(join(tmpdir(), "unvdel-"));
    const sw = join(dir, "sw");
    mkdirSync(sw);
    // a socket file nobody listens on, as a killed switch leaves it
    const fd = openUnixDgram(join(sw, "ctl"));
    closeFd(fd);
    const hub = new Hub(0);
    const l = await VdeListener.open({ id: "v0", dir: sw, hub, log: silentLogger });
    cleanups.push(() => l.close());
    await l.close();
    expect(exists(sw)).toBe(true); // not ours to remove: it was there before
    const file = join(dir, "file");
    writeFileSync(file, "");
    await expect(VdeListener.open({ id: "v1", dir: file, hub, log: silentLogger })).rejects.toThrow(
      /v1: cannot be a VDE switch at .*file: it exists and is not a directory/,
    );
  });
});

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
