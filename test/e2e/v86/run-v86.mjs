// Boots the v86 emulator (npm package v86) under Node with its NE2000 NIC on a
// WebSocket relay, and copies the guest's serial console to stdout, one line at a
// time. Ends (exit 0) when the guest prints "V86-DONE", or exits 1 after --timeout
// seconds. With --hold it stops the emulated CPU at "V86-DONE" but keeps running, the
// relay connection open, until it is killed (the test reads the port's counters).
// The e2e test runs it in its network namespace (websocket-v86.test.ts).
//
//   node run-v86.mjs --kernel F --initrd F --bios F --vgabios F --relay ws://... \
//                    [--cmdline "..."] [--timeout 300] [--hold]
//
// Node 20 has no global WebSocket; v86's relay client uses the `ws` package's, which
// has the browser API v86 needs (binaryType "arraybuffer", onmessage, send).
import { parseArgs } from "node:util";
import { V86 } from "v86";
import WebSocket from "ws";

const { values: a } = parseArgs({
  options: {
    kernel: { type: "string" },
    initrd: { type: "string" },
    bios: { type: "string" },
    vgabios: { type: "string" },
    relay: { type: "string" },
    cmdline: { type: "string", default: "" },
    timeout: { type: "string", default: "300" },
    hold: { type: "boolean", default: false },
  },
});
for (const k of ["kernel", "initrd", "bios", "vgabios", "relay"]) {
  if (!a[k]) {
    process.stderr.write(`run-v86: --${k} is required\n`);
    process.exit(2);
  }
}
globalThis.WebSocket ??= WebSocket;

const started = Date.now();
const emulator = new V86({
  wasm_path: new URL(import.meta.resolve("v86/build/v86.wasm")).pathname,
  bios: { url: a.bios },
  vga_bios: { url: a.vgabios },
  bzimage: { url: a.kernel },
  initrd: { url: a.initrd },
  cmdline: `console=ttyS0 quiet ${a.cmdline}`,
  memory_size: 128 * 1024 * 1024,
  vga_memory_size: 2 * 1024 * 1024,
  net_device: { type: "ne2k", relay_url: a.relay },
  autostart: true,
  disable_keyboard: true,
  disable_mouse: true,
  disable_speaker: true,
});

const timer = setTimeout(() => {
  process.stdout.write(`run-v86: timed out after ${a.timeout} s\n`);
  process.exit(1);
}, Number(a.timeout) * 1000);

let line = "";
emulator.add_listener("serial0-output-byte", (byte) => {
  if (byte === 10) {
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    process.stdout.write(`[${secs}] ${line}\n`);
    if (line.startsWith("V86-DONE")) {
      clearTimeout(timer);
      if (a.hold) {
        emulator.stop();
        process.stdout.write("run-v86: holding\n");
        line = "";
        return;
      }
      emulator.destroy();
      // the relay socket and the emulator's timers would keep Node alive
      setTimeout(() => process.exit(0), 100);
    }
    line = "";
  } else if (byte !== 13) line += String.fromCharCode(byte);
});
