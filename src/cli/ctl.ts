/**
 * `usernet ctl`: a client for the management API of a running usernet (src/api).
 *
 *   usernet ctl [--api PATH | --api-url URL --token-file FILE] [--json] COMMAND
 *     status                         version, uptime, netdevs, ports and their counters
 *     hubs                           hubs and their ports
 *     leases                         DHCP leases
 *     flows                          NAT flows (TCP, UDP, ICMP)
 *     forwards [list]                port forwards
 *     forwards add RULE [--netdev ID]   RULE as hostfwd=: [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport
 *     forwards remove ID
 *     ports add [HUB] NETDEV         attach a port: NETDEV as -netdev (socket, stream, dgram, vde, vxlan, websocket)
 *     ports remove ID                close a netdev or one port (a listener's client)
 *     capture HUB FILE [--count N] [--seconds S]   pcap of a hub to FILE ("-" = stdout)
 *
 * The API is reached on its unix socket (default: where `usernet` puts it when it runs
 * its defaults, or $USERNET_API) or over TCP with a bearer token. Output is tables
 * for people, or the API's JSON with --json. Exit status: 0 done, 1 the API refused
 * or could not be reached (its `reason: message` on stderr), 2 a bad command line.
 * A capture without bounds runs until SIGINT/SIGTERM, then closes the file cleanly. One
 * whose file cannot be written (a full disk) stops, cut back to its last whole record.
 */
import { createWriteStream, readFileSync, truncateSync } from "node:fs";
import { type ClientRequest, type IncomingMessage, request } from "node:http";
import { defaultApiSocketPath } from "./defaults.js";
import { hostfwdForm, parseHostForward } from "./forwards.js";
import { NetdevList } from "./netdev.js";
import { runtimeEnv } from "./runtime-dir.js";
import { UsageError } from "./usage-error.js";

export interface CtlEnvironment {
  argv: string[];
  env: NodeJS.ProcessEnv;
  stdout: { write(s: string | Buffer): unknown };
  stderr: { write(s: string): unknown };
  readFile?: (path: string) => string;
  onSignal(handler: (signal: string) => void): () => void;
}

export const ctlUsage = `usage: usernet ctl [--api PATH | --api-url URL --token-file FILE] [--json] COMMAND

Talks to the management API of a running usernet.
  --api PATH          its unix socket (default $USERNET_API, else where usernet puts
                      it by default: $XDG_RUNTIME_DIR/usernet/api.sock or
                      $TMPDIR/usernet-UID/api.sock)
  --api-url URL       http://HOST:PORT of an --api-listen API; needs --token-file
  --token-file FILE   the bearer token (first line of FILE)
  --json              print the API's JSON instead of tables

Commands:
  status                           version, uptime, netdevs, ports, counters
  hubs                             hubs and their ports
  leases                           DHCP leases
  flows                            NAT flows (TCP, UDP, ICMP)
  forwards [list]                  port forwards
  forwards add RULE [--netdev ID]  RULE: ${hostfwdForm.replace("hostfwd=", "")}
  forwards remove ID
  ports add [HUB] NETDEV           open a port as -netdev NETDEV would (socket, stream,
                                   dgram, vde, vxlan, websocket), on hub HUB or the hub its hubid= names
    e.g. usernet ctl ports add 0 vde,id=v1,sock=/tmp/vde.sw
    e.g. usernet ctl ports add websocket,id=ws1,listen=127.0.0.1:8080,origin=http://localhost:8000
    e.g. usernet ctl ports add vxlan,id=vx1,vni=42,remote=192.0.2.1,local=192.0.2.2
  ports remove ID                  close a netdev (by id) or one port (by name)
  capture HUB FILE [--count N] [--seconds S]
                                   a pcap of everything on hub HUB, to FILE (- = stdout)
    e.g. usernet ctl capture 0 hub0.pcap --count 200; tshark -r hub0.pcap
`;

interface Target {
  socketPath?: string;
  url?: URL;
  token?: string;
}

interface Parsed {
  target: Target;
  json: boolean;
  words: string[];
  flags: Map<string, string>;
}

const valueFlags = new Set(["api", "api-url", "token-file", "netdev", "count", "seconds"]);

function parseArgs(io: CtlEnvironment): Parsed | "help" {
  const words: string[] = [];
  const flags = new Map<string, string>();
  let json = false;
  const args = io.argv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "-h" || a === "--help" || a === "help") return "help";
    if (a === "--json") {
      json = true;
      continue;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (!valueFlags.has(name)) throw new UsageError(`ctl: unknown option ${a} (see usernet ctl --help)`);
      let value = eq < 0 ? args[++i] : a.slice(eq + 1);
      if (value === undefined || value === "") throw new UsageError(`ctl: ${a} needs a value`);
      if (eq < 0 && value.startsWith("--")) throw new UsageError(`ctl: --${name} needs a value`);
      value = value.trim();
      flags.set(name, value);
      continue;
    }
    words.push(a);
  }
  const target: Target = {};
  const api = flags.get("api");
  const url = flags.get("api-url");
  const tokenFile = flags.get("token-file");
  if (api !== undefined && url !== undefined) throw new UsageError("ctl: give --api or --api-url, not both");
  if (url !== undefined) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UsageError(`ctl: --api-url ${url}: expected http://HOST:PORT`);
    }
    if (u.protocol !== "http:") throw new UsageError(`ctl: --api-url ${url}: only http:// is supported`);
    if (tokenFile === undefined) throw new UsageError("ctl: --api-url needs --token-file FILE");
    target.url = u;
  } else {
    const uid = process.getuid?.() ?? 0;
    // the same directory the server chose: without an unusable XDG_RUNTIME_DIR
    target.socketPath = api ?? io.env.USERNET_API ?? defaultApiSocketPath(runtimeEnv(io.env, uid).env, uid);
  }
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = (io.readFile ?? readDefault)(tokenFile);
    } catch (e) {
      throw new UsageError(
        `ctl: --token-file ${tokenFile}: cannot read: ${e instanceof Error ? e.message : e}`,
      );
    }
    target.token = text.split("\n", 1)[0]?.trim() ?? "";
  }
  return { target, json, words, flags };
}

const readDefault = (p: string): string => readFileSync(p, "utf8");

class ApiFailure extends Error {}

function open(target: Target, method: string, path: string, body?: unknown): ClientRequest {
  const headers: Record<string, string> = {};
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  let payload: string | undefined;
  if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["content-type"] = "application/json";
    headers["content-length"] = String(Buffer.byteLength(payload));
  }
  const req = target.url
    ? request(new URL(path, target.url), { method, headers })
    : request({ socketPath: target.socketPath, path, method, headers });
  req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
  if (payload !== undefined) req.write(payload);
  return req;
}

function where(target: Target): string {
  return target.url ? target.url.origin : `unix socket ${target.socketPath}`;
}

function fail(target: Target, e: unknown): ApiFailure {
  const code = (e as NodeJS.ErrnoException).code;
  const hint =
    code === "ENOENT" || code === "ECONNREFUSED"
      ? " (is usernet running with its API there? see --api)"
      : code === "EACCES"
        ? " (the socket belongs to another user)"
        : "";
  return new ApiFailure(`cannot reach the API on ${where(target)}: ${code ?? (e as Error).message}${hint}`);
}

/** One JSON request; resolves to the parsed answer, or throws ApiFailure with the API's reason. */
function call(target: Target, method: string, path: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = open(target, method, path, body);
    req.on("error", (e) => reject(fail(target, e)));
    req.on("response", (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", (e) => reject(fail(target, e)));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: unknown;
        try {
          parsed = text === "" ? undefined : JSON.parse(text);
        } catch {
          parsed = text;
        }
        const status = res.statusCode ?? 0;
        if (status >= 400) {
          const err = (parsed as { error?: { reason?: string; message?: string } } | undefined)?.error;
          reject(
            new ApiFailure(err ? `${err.reason}: ${err.message}` : `HTTP ${status}: ${text.slice(0, 200)}`),
          );
        } else resolve(parsed);
      });
    });
    req.end();
  });
}

/** Columns padded to their widest cell; numbers right-aligned. */
export function formatTable(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number"));
  return `${cells
    .map((r) =>
      r
        .map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

type Json = Record<string, unknown>;
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const str = (v: unknown): string => (v === undefined || v === null ? "" : String(v));
const num = (v: unknown): number => (typeof v === "number" ? v : 0);
const dropsOf = (v: unknown): number =>
  Object.values((v ?? {}) as Record<string, number>).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);

function printStatus(s: Json): string {
  let out = `usernet ${str(s.version)}, up ${num(s.uptimeSeconds).toFixed(1)} s\n\n`;
  out += formatTable(
    ["NETDEV", "KIND", "HUB", "DESCRIPTION"],
    arr(s.netdevs).map((n) => [str(n.id), str(n.kind), num(n.hub), str(n.description)]),
  );
  out += "\n";
  out += formatTable(
    ["PORT", "KIND", "HUB", "NETDEV", "RX-FRAMES", "RX-BYTES", "TX-FRAMES", "TX-BYTES", "DROPS"],
    arr(s.ports).map((p) => {
      const st = (p.stats ?? {}) as Json;
      return [
        str(p.name),
        str(p.kind),
        num(p.hub),
        str(p.netdev) || "-",
        num(st.rxFrames),
        num(st.rxBytes),
        num(st.txFrames),
        num(st.txBytes),
        dropsOf(st.drops),
      ];
    }),
  );
  return out;
}

function printHubs(hubs: unknown): string {
  return formatTable(
    ["HUB", "PORTS", "FRAMES", "BYTES", "DROPS", "NAMES"],
    arr(hubs).map((h) => {
      const st = (h.stats ?? {}) as Json;
      const names = Array.isArray(h.ports) ? (h.ports as string[]) : [];
      return [num(h.id), names.length, num(st.frames), num(st.bytes), dropsOf(st.drops), names.join(", ")];
    }),
  );
}

function printLeases(view: unknown, now: number): string {
  const rows = arr(view).flatMap((nd) => [
    ...arr(nd.leases).map((l) => [
      str(nd.netdev),
      str(l.ip),
      str(l.mac),
      str(l.state),
      str(l.hostname) || "-",
      l.state === "bootp" ? "never" : `${Math.round((num(l.expiresAt) - now) / 1000)} s`,
    ]),
    // DHCPv6 leases (IA_NA bindings) after the IPv4 ones
    ...arr(nd.leases6).map((l) => [
      str(nd.netdev),
      str(l.ip),
      str(l.mac),
      str(l.state),
      "-",
      `${Math.round((num(l.expiresAt) - now) / 1000)} s`,
    ]),
  ]);
  return formatTable(["NETDEV", "IP", "MAC", "STATE", "HOSTNAME", "EXPIRES-IN"], rows);
}

function printFlows(f: Json): string {
  const age = (v: unknown) => `${(num(v) / 1000).toFixed(1)} s`;
  const rows = [
    ...arr(f.tcp).map((x) => [
      "tcp",
      str(x.netdev),
      str(x.guest),
      str(x.remote),
      str(x.state),
      num(x.toHostBytes),
      num(x.toGuestBytes),
      age(x.ageMs),
    ]),
    ...arr(f.udp).map((x) => [
      "udp",
      str(x.netdev),
      str(x.guest),
      str(x.lastDestination),
      "-",
      num(x.txBytes),
      num(x.rxBytes),
      age(x.ageMs),
    ]),
    ...arr(f.icmp).map((x) => [
      "icmp",
      str(x.netdev),
      `${str(x.guest)} id ${num(x.echoId)}`,
      str(x.lastDestination),
      "-",
      num(x.echoes),
      num(x.replies),
      age(x.ageMs),
    ]),
  ];
  return formatTable(["PROTO", "NETDEV", "GUEST", "REMOTE", "STATE", "TO-HOST", "TO-GUEST", "AGE"], rows);
}

function printForwards(list: unknown): string {
  return formatTable(
    ["ID", "NETDEV", "PROTO", "HOST", "GUEST", "BOUND", "ERROR"],
    arr(list).map((f) => {
      const b = f.bound as { address?: string; port?: number } | undefined;
      return [
        num(f.id),
        str(f.netdev),
        str(f.proto),
        `${bracket(str(f.hostAddr) || "0.0.0.0")}:${num(f.hostPort)}`,
        `${bracket(str(f.guestAddr))}:${num(f.guestPort)}`,
        b ? `${bracket(str(b.address))}:${num(b.port)}` : "-",
        str(f.error) || "-",
      ];
    }),
  );
}

const count = (what: string, s: string | undefined, max: number): number | undefined => {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(s) || !(n > 0) || n > max) {
    throw new UsageError(`ctl: --${what} ${s}: expected a number in (0, ${max}]`);
  }
  return n;
};

async function capture(io: CtlEnvironment, p: Parsed, hub: string, file: string): Promise<number> {
  if (!/^[0-9]{1,9}$/.test(hub)) throw new UsageError(`ctl: capture ${hub}: expected a hub number`);
  const n = count("count", p.flags.get("count"), 1e9);
  if (n !== undefined && !Number.isInteger(n)) throw new UsageError("ctl: --count: expected a whole number");
  const seconds = count("seconds", p.flags.get("seconds"), 86_400);
  const q = new URLSearchParams();
  if (n !== undefined) q.set("count", String(n));
  if (seconds !== undefined) q.set("seconds", String(seconds));
  const path = `/v1/hubs/${hub}/capture${q.size > 0 ? `?${q}` : ""}`;
  const { target } = p;
  return new Promise<number>((resolve) => {
    const req = open(target, "GET", path);
    let stopped = false;
    const unsubscribe = io.onSignal(() => {
      stopped = true;
      req.destroy();
    });
    let finished = false;
    const done = (code: number, message?: string) => {
      if (finished) return;
      finished = true;
      unsubscribe();
      if (message) io.stderr.write(`usernet ctl: ${message}\n`);
      resolve(code);
    };
    req.on("error", (e) => {
      if (!stopped) done(1, fail(target, e).message);
    });
    req.on("response", (res: IncomingMessage) => {
      if ((res.statusCode ?? 0) >= 400) {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let msg = `HTTP ${res.statusCode}`;
          try {
            const e = JSON.parse(Buffer.concat(chunks).toString("utf8")).error;
            msg = `${e.reason}: ${e.message}`;
          } catch {
            // not our error shape: the status says enough
          }
          done(1, msg);
        });
        return;
      }
      req.setTimeout(0);
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
      });
      if (file === "-") {
        res.on("data", (c: Buffer) => io.stdout.write(c));
        res.on("close", () => done(0, `${bytes} bytes of pcap written`));
        return;
      }
      const out = createWriteStream(file, { mode: 0o600 });
      const records = new PcapRecordEnds();
      res.on("data", (c: Buffer) => records.push(c, out.bytesWritten));
      out.on("error", (e) => {
        // a full disk (ENOSPC) or the like: stop the capture (usernet ends it when we
        // hang up) and cut the file back to its last whole record, so it stays readable
        req.destroy();
        const whole = records.lastEndWithin(out.bytesWritten);
        try {
          truncateSync(file, whole);
        } catch {
          // the file as it is: tshark reads up to the cut and warns
        }
        done(1, `${file}: ${e.message}; capture stopped, ${whole} bytes of whole records kept`);
      });
      res.pipe(out);
      // an interrupted capture still leaves what arrived, a readable file
      res.on("close", () => {
        if (!res.readableEnded) res.unpipe(out);
        out.end(() => done(0, `${bytes} bytes of pcap written to ${file}`));
      });
    });
    req.end();
  });
}

/**
 * Where the records of a pcap stream end (byte offsets from its start): the 24-byte
 * file header, then records of a 16-byte header and `incl_len` bytes. Keeps only the
 * ends not yet known to be on disk, plus the last one that is.
 */
class PcapRecordEnds {
  private offset = 0;
  /** where the next record (or the file header) ends */
  private next = 24;
  private readonly header = Buffer.alloc(16);
  private headerHave = -1;
  private ends: number[] = [0];

  push(chunk: Buffer, written: number): void {
    let i = 0;
    while (i < chunk.length) {
      const at = this.offset + i;
      if (this.headerHave >= 0 && this.headerHave < 16) {
        const k = Math.min(16 - this.headerHave, chunk.length - i);
        chunk.copy(this.header, this.headerHave, i, i + k);
        this.headerHave += k;
        i += k;
        if (this.headerHave === 16) this.next = this.offset + i + this.header.readUInt32LE(8);
        continue;
      }
      if (at + (chunk.length - i) < this.next) break;
      i += this.next - at;
      this.ends.push(this.next);
      this.headerHave = 0;
    }
    this.offset += chunk.length;
    while (this.ends.length > 1 && (this.ends[1] as number) <= written) this.ends.shift();
  }

  /** the end of the last whole record at or before `written` bytes */
  lastEndWithin(written: number): number {
    let best = 0;
    for (const e of this.ends) if (e <= written) best = e;
    return best;
  }
}

async function dispatch(io: CtlEnvironment, p: Parsed): Promise<number> {
  const [cmd, sub, ...rest] = p.words;
  const { target } = p;
  const print = (value: unknown, table: (v: never) => string) =>
    io.stdout.write(p.json ? `${JSON.stringify(value, null, 2)}\n` : table(value as never));
  const extra = (allowed: number, words: string[]) => {
    if (words.length > allowed)
      throw new UsageError(`ctl: unexpected "${words[allowed]}" (see usernet ctl --help)`);
  };
  /** for the commands that take nothing after their name */
  const noWords = () => extra(0, sub === undefined ? rest : [sub, ...rest]);
  switch (cmd) {
    case "status":
      noWords();
      print(await call(target, "GET", "/v1/status"), printStatus);
      return 0;
    case "hubs":
      noWords();
      print(await call(target, "GET", "/v1/hubs"), printHubs);
      return 0;
    case "leases":
      noWords();
      print(await call(target, "GET", "/v1/leases"), (v) => printLeases(v, Date.now()));
      return 0;
    case "flows":
      noWords();
      print(await call(target, "GET", "/v1/flows"), printFlows);
      return 0;
    case "forwards":
      if (sub === undefined || sub === "list") {
        extra(0, rest);
        print(await call(target, "GET", "/v1/forwards"), printForwards);
        return 0;
      }
      if (sub === "add") {
        extra(1, rest);
        const rule = rest[0];
        if (rule === undefined) throw new UsageError(`ctl: forwards add RULE: expected ${hostfwdForm}`);
        const r = parseHostForward(rule);
        if (!r.ok) throw new UsageError(`ctl: forwards add ${rule}: ${r.reason}; expected ${hostfwdForm}`);
        const body: Record<string, unknown> = { ...r.value };
        const netdev = p.flags.get("netdev");
        if (netdev !== undefined) body.netdev = netdev;
        print(await call(target, "POST", "/v1/forwards", body), (v) => printForwards([v]));
        return 0;
      }
      if (sub === "remove") {
        extra(1, rest);
        const id = rest[0];
        if (id === undefined || !/^[0-9]{1,9}$/.test(id))
          throw new UsageError("ctl: forwards remove ID: expected a number");
        await call(target, "DELETE", `/v1/forwards/${id}`);
        if (!p.json) io.stdout.write(`removed forward ${id}\n`);
        return 0;
      }
      throw new UsageError(`ctl: forwards ${sub}: expected list, add RULE or remove ID`);
    case "ports": {
      if (sub === "add") {
        extra(2, rest);
        const [first, second] = rest;
        if (first === undefined) throw new UsageError("ctl: expected ports add [HUB] NETDEV");
        const { portRequest } = await import("./ctl-ports.js");
        const { hub, body } = second === undefined ? portRequest(first) : portRequest(second, first);
        const view = await call(target, "POST", `/v1/hubs/${hub}/ports`, body);
        print(
          view,
          (v: Record<string, unknown>) => `added ${str(v.id)} (${str(v.kind)}): ${str(v.description)}\n`,
        );
        return 0;
      }
      const id = rest[0];
      if (sub !== "remove" || id === undefined)
        throw new UsageError("ctl: expected ports add [HUB] NETDEV or ports remove ID");
      extra(1, rest);
      await call(target, "DELETE", `/v1/ports/${encodeURIComponent(id)}`);
      if (!p.json) io.stdout.write(`closed ${id}\n`);
      return 0;
    }
    case "capture": {
      const file = rest[0];
      if (sub === undefined || file === undefined) throw new UsageError("ctl: expected capture HUB FILE");
      extra(1, rest);
      return capture(io, p, sub, file);
    }
    case undefined:
      throw new UsageError("ctl: a command is missing (see usernet ctl --help)");
    default:
      throw new UsageError(`ctl: unknown command "${cmd}" (see usernet ctl --help)`);
  }
}

/**
 * `ports add NETDEV`: a -netdev option value (socket, stream, dgram, vxlan) as the
 * API's port request, on the hub its hubid= names (default 0).
 */
export function portRequest(spec: string): { hub: number; body: Record<string, unknown> } {
  const cfg = new NetdevList().add("-netdev", spec);
  if (cfg.type === "user" || cfg.type === "tap") {
    throw new UsageError(
      `ctl: ports add ${cfg.type},...: only socket, stream, dgram and vxlan ports can be added`,
    );
  }
  const { hub, ...body } = cfg;
  return { hub, body };
}

/** Runs `usernet ctl ARGS`; resolves to the exit status. */
export async function runCtl(io: CtlEnvironment): Promise<number> {
  try {
    const p = parseArgs(io);
    if (p === "help") {
      io.stdout.write(ctlUsage);
      return 0;
    }
    return await dispatch(io, p);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`usernet ${e.message}\n`);
      return 2;
    }
    if (e instanceof ApiFailure) {
      io.stderr.write(`usernet ctl: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** an address as an endpoint shows it: IPv6 in brackets */
function bracket(a: string): string {
  return a.includes(":") ? `[${a}]` : a;
}
