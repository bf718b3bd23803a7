// Serves the v86 example page (index.html here) and exactly the files it loads, from
// this machine: v86 from node_modules, SeaBIOS from Debian's seabios package, and the
// guest kernel and initramfs test/e2e/v86/build-v86-guest.sh builds. Nothing else is
// served (no directory listing, no other path). Loopback only by default.
//
//   node examples/v86/serve.mjs --kernel FILE --initrd FILE [--port 8000] [--host 127.0.0.1]
//                               [--bios FILE] [--vgabios FILE]
// Prints "serving http://HOST:PORT/" once listening.
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    kernel: { type: "string" },
    initrd: { type: "string" },
    bios: { type: "string", default: "/usr/share/seabios/bios.bin" },
    vgabios: { type: "string", default: "/usr/share/seabios/vgabios.bin" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8000" },
  },
});
if (!a.kernel || !a.initrd) {
  process.stderr.write("serve.mjs: --kernel and --initrd are required (see examples/v86/README.md)\n");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const v86 = dirname(createRequire(import.meta.url).resolve("v86/build/libv86.js"));
const files = {
  "/": [join(here, "index.html"), "text/html; charset=utf-8"],
  "/v86/libv86.js": [join(v86, "libv86.js"), "text/javascript"],
  "/v86/v86.wasm": [join(v86, "v86.wasm"), "application/wasm"],
  "/bios/bios.bin": [a.bios, "application/octet-stream"],
  "/bios/vgabios.bin": [a.vgabios, "application/octet-stream"],
  "/guest/vmlinuz": [a.kernel, "application/octet-stream"],
  "/guest/initramfs.gz": [a.initrd, "application/octet-stream"],
};
for (const [path, [file]] of Object.entries(files)) {
  try {
    statSync(file);
  } catch {
    process.stderr.write(`serve.mjs: ${path}: ${file} does not exist\n`);
    process.exit(1);
  }
}

const server = createServer((req, res) => {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  const entry = files[path === "/index.html" ? "/" : path];
  if (!entry || (req.method !== "GET" && req.method !== "HEAD")) {
    if (path !== "/favicon.ico") process.stderr.write(`serve.mjs: 404 ${req.method} ${path}\n`);
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  const [file, type] = entry;
  // v86 fetches images with Range requests when it can; whole files are fine too
  res.writeHead(200, { "content-type": type, "content-length": statSync(file).size, "cache-control": "no-store" });
  if (req.method === "HEAD") res.end();
  else createReadStream(file).pipe(res);
});
server.listen(Number(a.port), a.host, () => {
  const addr = server.address();
  process.stdout.write(`serving http://${a.host}:${typeof addr === "object" && addr ? addr.port : a.port}/\n`);
});
