#!/usr/bin/env -S node --max-semi-space-size=64 --min-semi-space-size=64
// Micro benchmark of usernet's receive path, guest → host, in one process and without
// sockets: a simulated guest sends small data segments (64-byte requests by default,
// as an interactive client or a request/response protocol does) on an established
// connection to a UserStack (from dist/), and a relay stand-in consumes each delivered
// byte at once. Prints the JavaScript heap allocated per guest frame (young generation,
// measured across a run that fits in one semi-space, so no scavenge muddles it) and
// CPU nanoseconds per frame. A development aid for the per-frame code (decode, dispatch,
// the endpoint's receive path), next to the side-by-side bench, not a replacement for it.
//
// Usage: node bench/micro/guest-to-host.mjs [--frames 20000] [--size 64] [--rounds 5] [--dist DIR]
import { join } from "node:path";
import v8 from "node:v8";
import { distDir, guestLink, numberOption } from "./guest-link.mjs";

const dist = distDir();
const { UserStack } = await import(join(dist, "stack/user-stack.js"));

const count = numberOption("frames", 20_000);
const size = numberOption("size", 64);
const rounds = numberOption("rounds", 5);

const { config, guestFrame } = await guestLink(dist, 1500);

function once(port) {
  let conn;
  let delivered = 0;
  const sent = [];
  const stack = new UserStack(
    config,
    { now: () => performance.now() },
    {
      emit: (f) => {
        for (const x of f) sent.push(x);
      },
      tcp: (c, ev) => {
        if (ev.type === "connect-request") c.accept();
        else if (ev.type === "established") conn = c;
        else if (ev.type === "data") {
          delivered += ev.data.length;
          c.consume(ev.data.length);
        }
      },
    },
  );
  let seq = 1000;
  const base = { srcPort: port, dstPort: 7, window: 24000, urgent: 0, tsVal: 1, tsEcr: 0 };
  const syn = {
    ...base,
    seq,
    ack: 0,
    flags: 0x02,
    payload: Buffer.alloc(0),
    mss: 1460,
    sackPermitted: true,
    windowScale: 7,
  };
  const synAck = [...stack.input([guestFrame(syn)]), ...sent.splice(0)][0];
  if (!synAck) throw new Error("no SYN-ACK");
  const ack = (synAck.readUInt32BE(38) + 1) >>> 0;
  seq++;
  // every frame is built before the measured loop, so only the stack's work is counted
  const frames = [];
  const payload = Buffer.alloc(size, 0x61);
  for (let i = 0; i <= count; i++) {
    frames.push(
      guestFrame({
        ...base,
        seq,
        ack,
        flags: i === 0 ? 0x10 : 0x18,
        payload: i === 0 ? Buffer.alloc(0) : payload,
      }),
    );
    if (i > 0) seq += size;
  }
  stack.input([frames[0]]);
  if (!conn) throw new Error("no connection");
  const one = [undefined];
  // the frames move to the old generation first: only what the stack allocates is young
  globalThis.gc?.();
  globalThis.gc?.();
  const h0 = v8.getHeapStatistics().used_heap_size;
  const t0 = process.cpuUsage();
  for (let i = 1; i <= count; i++) {
    one[0] = frames[i];
    stack.input(one);
    sent.length = 0;
  }
  const cpu = process.cpuUsage(t0);
  const h1 = v8.getHeapStatistics().used_heap_size;
  if (delivered !== count * size) throw new Error(`delivered ${delivered} of ${count * size} bytes`);
  return { cpuNs: (cpu.user + cpu.system) * 1000, heap: h1 - h0 };
}

// the ACK the stack owes the guest is left to the stack's timers: frames are data only
once(39999);
const results = [];
for (let i = 0; i < rounds; i++) {
  globalThis.gc?.();
  const r = once(40000 + i);
  results.push(r);
  process.stdout.write(
    `round ${i + 1}: ${(r.heap / count).toFixed(0)} heap bytes/frame, ${(r.cpuNs / count).toFixed(0)} ns/frame\n`,
  );
}
const med = (k) => results.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(results.length / 2)] / count;
process.stdout.write(
  `median ${med("heap").toFixed(0)} heap bytes/frame, ${med("cpuNs").toFixed(0)} ns/frame\n`,
);
