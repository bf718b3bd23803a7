// The benchmark's TCP servers on the server namespace's loopback, one process per
// argument list: `node servers.mjs echo:FIRST-LAST close:FIRST-LAST ...`.
//   echo   echoes everything until the client closes (the client closes first)
//   close  answers the first bytes with the same bytes and closes (HTTP/1.0 style: the
//          server closes first)
// Each test of the bench dials ports of its own, so the TIME_WAIT sockets one test
// leaves in the client namespace never share a 4-tuple with the next test's. Prints
// SERVERS-READY once every port listens. One process holds at most RLIMIT_NOFILE
// connections (node raises its soft limit to the hard one); the bench runs one process
// per share of the held-flows test.
import { createServer } from "node:net";

const specs = process.argv.slice(2).map((a) => {
  const m = /^(echo|close):(\d+)-(\d+)$/.exec(a);
  if (!m) throw new Error(`servers.mjs: bad argument ${a}`);
  return { kind: m[1], first: Number(m[2]), last: Number(m[3]) };
});

function onEcho(c) {
  c.setNoDelay(true);
  c.on("error", () => {});
  c.pipe(c);
}

function onClose(c) {
  c.setNoDelay(true);
  c.on("error", () => {});
  c.once("data", (d) => c.end(d));
}

const listening = [];
for (const { kind, first, last } of specs) {
  for (let port = first; port <= last; port++) {
    const s = createServer(kind === "echo" ? onEcho : onClose);
    listening.push(
      new Promise((resolve, reject) => {
        s.once("error", reject);
        s.listen({ port, host: "127.0.0.1", backlog: 4096 }, resolve);
      }),
    );
  }
}
await Promise.all(listening);
console.log("SERVERS-READY");
