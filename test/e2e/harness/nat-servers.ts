/**
 * Servers on the "host" side of NAT tests, run as one Node process inside the test's
 * namespace, listening on each given address (127.0.0.1 is what the guest reaches as
 * 10.0.2.2; 198.51.100.1 on a dummy interface stands for "the internet"):
 *
 *   HTTP  GET /blob   BLOB_MIB MiB of random bytes (generated at start; its sha256 is
 *                     in the ready line), GET /stats the counters as JSON,
 *                     POST /upload answers "<sha256> <bytes>" of what it received;
 *   TCP   echo        counts connections, the most open at once;
 *   UDP   echo        counts datagrams.
 *
 * The process prints one line "NAT-SERVERS-READY {json}" once everything listens.
 * Counters are read over HTTP from inside the namespace (never from the guest, whose
 * own connections would count).
 */
import type { Netns } from "./netns.js";
import type { Proc } from "./proc.js";

export interface NatServerPorts {
  http: number;
  echo: number;
  udp: number;
}

export interface NatServerStats {
  tcpAccepted: number;
  tcpOpen: number;
  tcpMaxOpen: number;
  udpDatagrams: number;
  blobGets: number;
  uploads: number;
}

const script = String.raw`
const http = require("node:http"), net = require("node:net"), dgram = require("node:dgram");
const crypto = require("node:crypto");
const [addrs, httpPort, echoPort, udpPort, blobMib] = JSON.parse(process.argv[1]);
const blob = crypto.randomBytes(blobMib * 1024 * 1024);
const blobSha = crypto.createHash("sha256").update(blob).digest("hex");
const st = { tcpAccepted: 0, tcpOpen: 0, tcpMaxOpen: 0, udpDatagrams: 0, blobGets: 0, uploads: 0 };
let pending = 0;
const listening = () => { if (--pending === 0) console.log("NAT-SERVERS-READY " + JSON.stringify({ blobSha, blobBytes: blob.length })); };
for (const a of addrs) {
  pending += 3;
  http.createServer((q, s) => {
    if (q.method === "GET" && q.url === "/blob") {
      st.blobGets++;
      s.writeHead(200, { "content-length": blob.length, "content-type": "application/octet-stream" });
      s.end(blob);
    } else if (q.method === "GET" && q.url === "/stats") {
      s.end(JSON.stringify(st));
    } else if (q.method === "POST" && q.url === "/upload") {
      const h = crypto.createHash("sha256");
      let n = 0;
      q.on("data", (c) => { h.update(c); n += c.length; });
      q.on("end", () => { st.uploads++; s.end(h.digest("hex") + " " + n + "\n"); });
    } else { s.statusCode = 404; s.end(); }
  }).listen(httpPort, a, listening);
  net.createServer((c) => {
    st.tcpAccepted++; st.tcpOpen++; st.tcpMaxOpen = Math.max(st.tcpMaxOpen, st.tcpOpen);
    c.setNoDelay(true);
    c.on("error", () => {});
    c.on("close", () => { st.tcpOpen--; });
    c.pipe(c);
  }).listen({ port: echoPort, host: a, backlog: 1024 }, listening);
  const u = dgram.createSocket("udp4");
  u.on("message", (m, r) => { st.udpDatagrams++; u.send(m, r.port, r.address); });
  u.bind(udpPort, a, listening);
}
setTimeout(() => {}, 3600e3);
`;

export class NatServers {
  private constructor(
    private readonly ns: Netns,
    readonly proc: Proc,
    readonly ports: NatServerPorts,
    readonly blobSha: string,
    readonly blobBytes: number,
  ) {}

  static async start(
    ns: Netns,
    addrs: readonly string[],
    ports: NatServerPorts,
    opts: { blobMib?: number } = {},
  ): Promise<NatServers> {
    const arg = JSON.stringify([addrs, ports.http, ports.echo, ports.udp, opts.blobMib ?? 1]);
    const proc = ns.spawn("nat-servers", process.execPath, ["-e", script, arg]);
    const ready = await proc.until("NAT-SERVERS-READY", 20_000, () => {
      const m = /NAT-SERVERS-READY (\{.*\})/.exec(proc.stdout);
      return m ? (JSON.parse(m[1] as string) as { blobSha: string; blobBytes: number }) : undefined;
    });
    return new NatServers(ns, proc, ports, ready.blobSha, ready.blobBytes);
  }

  /** The counters, read over 127.0.0.1 inside the namespace. */
  async stats(): Promise<NatServerStats> {
    const code = `fetch("http://127.0.0.1:${this.ports.http}/stats").then(r => r.text()).then(t => console.log(t))`;
    const out = await this.ns.execOk(process.execPath, ["-e", code], 10_000);
    return JSON.parse(out) as NatServerStats;
  }

  close() {
    return this.proc.kill(2000);
  }
}

const udpEchoScript = (port: number) => `
const s = require("node:dgram").createSocket("udp4");
s.on("message", (m, r) => s.send(m, r.port, r.address));
s.bind(${port}, "127.0.0.1", () => process.stdout.write("listening\\n"));
`;

/** A bare UDP echo on 127.0.0.1:`port` inside `ns` (the guest's 10.0.2.2), once it listens. */
export async function startUdpEcho(ns: Netns, port: number): Promise<Proc> {
  const echo = ns.spawn("udp-echo", process.execPath, ["-e", udpEchoScript(port)]);
  await echo.until("udp echo listening", 10_000, () =>
    echo.stdout.includes("listening") ? true : undefined,
  );
  return echo;
}
