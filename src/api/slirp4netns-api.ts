/**
 * slirp4netns's JSON API (`--api-socket PATH`), for rootlesskit, Podman and scripts
 * written for slirp4netns 1.2: add_hostfwd, list_hostfwd, remove_hostfwd on a unix
 * socket, over the forwards service the API declares (service.ts).
 *
 * Theory of operation
 * - One request per connection: the client writes a JSON object and (usually) shuts
 *   down its write side; the reply is one JSON object, then the connection closes. As
 *   slirp4netns answers after its first read, a request is handled as soon as the bytes
 *   so far parse as JSON, or at end of input, or after `requestTimeoutMs` (5 s) with
 *   what came. 4096 bytes or more is "too large message", as in slirp4netns.
 * - Replies are byte-for-byte the real binary's: `{"return":{"id":1}}`, `{"return":{}}`,
 *   `{"entries":[...]}` (not wrapped in "return", whatever the man page says), and
 *   `{"error":{"desc":"bad request: ..."}}` with slirp4netns's own messages.
 * - Better than slirp4netns: ports outside 1..65535 are refused (it takes 70000), a
 *   missing proto is an error rather than a crash, and every refusal of the facade
 *   (duplicate, address outside the network, bind failure) is the same
 *   "slirp_add_hostfwd failed" it prints, with the real reason in our log.
 * - guest_addr defaults to `defaultGuestAddr` (10.0.2.100, the `--configure` address,
 *   in the slirp4netns drop-in); without it, to the netdev's first DHCP address.
 * - The socket is created mode 0600; a stale socket file at PATH is replaced (anything
 *   else there is an error); the file is removed on close.
 */
import * as fs from "node:fs";
import net from "node:net";
import type { ApiLog, ForwardsService } from "./service.js";

export interface Slirp4netnsApiOptions {
  /** guest_addr when a request leaves it out; absent: the netdev's first DHCP address */
  defaultGuestAddr?: string;
  /** the user netdev forwards go to; absent: the first */
  netdev?: string;
  log?: ApiLog;
  /** a request that threw (a bug): counted by the service; default: logged */
  internalError?: (where: string, err: unknown) => void;
  requestTimeoutMs?: number;
}

export interface Slirp4netnsApi {
  readonly path: string;
  close(): Promise<void>;
}

const maxRequest = 4096;
const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

const err = (desc: string) => JSON.stringify({ error: { desc: `bad request: ${desc}` } });
const isPort = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;

const silent: ApiLog = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Answers one request's text; never throws. */
export async function handleSlirp4netnsRequest(
  text: string,
  facade: ForwardsService,
  options: Slirp4netnsApiOptions = {},
): Promise<string> {
  const log = options.log ?? silent;
  let req: unknown;
  try {
    req = JSON.parse(text);
  } catch {
    return err("cannot parse JSON");
  }
  if (typeof req !== "object" || req === null || Array.isArray(req)) return err("json_object() failed");
  const { execute, arguments: args0 } = req as { execute?: unknown; arguments?: unknown };
  if (typeof execute !== "string") return err("no execute found");
  const args = (typeof args0 === "object" && args0 !== null ? args0 : {}) as Record<string, unknown>;
  switch (execute) {
    case "add_hostfwd": {
      const proto = args.proto;
      if (proto !== "tcp" && proto !== "udp") return err("add_hostfwd: bad arguments.proto");
      const hostAddr = args.host_addr === undefined || args.host_addr === "" ? "0.0.0.0" : args.host_addr;
      if (typeof hostAddr !== "string" || !ipv4.test(hostAddr))
        return err("add_hostfwd: bad arguments.host_addr");
      if (!isPort(args.host_port)) return err("add_hostfwd: bad arguments.host_port");
      const guestAddr =
        args.guest_addr === undefined || args.guest_addr === ""
          ? (options.defaultGuestAddr ?? "")
          : args.guest_addr;
      if (typeof guestAddr !== "string" || (guestAddr !== "" && !ipv4.test(guestAddr))) {
        return err("add_hostfwd: bad arguments.guest_addr");
      }
      if (!isPort(args.guest_port)) return err("add_hostfwd: bad arguments.guest_port");
      try {
        const v = await facade.add(options.netdev, {
          proto,
          hostAddr: hostAddr === "0.0.0.0" ? "" : hostAddr,
          hostPort: args.host_port,
          guestAddr,
          guestPort: args.guest_port,
        });
        return JSON.stringify({ return: { id: v.id } });
      } catch (e) {
        log.warn(`add_hostfwd refused: ${e instanceof Error ? e.message : String(e)}`);
        return err("add_hostfwd: slirp_add_hostfwd failed");
      }
    }
    case "list_hostfwd": {
      const entries = facade
        .list()
        .filter((f) => options.netdev === undefined || f.netdev === options.netdev)
        .map((f) => ({
          id: f.id,
          proto: f.proto,
          host_addr: f.hostAddr,
          host_port: f.hostPort === 0 && f.bound ? f.bound.port : f.hostPort,
          guest_addr: f.guestAddr,
          guest_port: f.guestPort,
        }));
      return JSON.stringify({ entries });
    }
    case "remove_hostfwd": {
      const id = args.id;
      if (typeof id !== "number" || !Number.isInteger(id) || !facade.remove(id)) {
        return err("remove_hostfwd: bad arguments.id");
      }
      return JSON.stringify({ return: {} });
    }
    default:
      return err("unknown execute");
  }
}

/** Listens on `path` for slirp4netns API requests. */
export async function startSlirp4netnsApi(
  path: string,
  facade: ForwardsService,
  options: Slirp4netnsApiOptions = {},
): Promise<Slirp4netnsApi> {
  const log = options.log ?? silent;
  const timeoutMs = options.requestTimeoutMs ?? 5_000;
  removeStaleSocket(path);
  const server = net.createServer({ allowHalfOpen: true }, (sock) => serve(sock));
  const open = new Set<net.Socket>();

  function serve(sock: net.Socket): void {
    open.add(sock);
    sock.on("close", () => open.delete(sock));
    sock.on("error", (e) => log.debug("api connection error", { error: e.message }));
    const chunks: Buffer[] = [];
    let size = 0;
    let state: "reading" | "handling" | "done" = "reading";
    const finish = (reply: string) => {
      state = "done";
      clearTimeout(timer);
      sock.end(reply, () => sock.destroy());
    };
    const handle = () => {
      if (state !== "reading") return;
      state = "handling";
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("utf8");
      log.debug("api request", { request: text });
      handleSlirp4netnsRequest(text, facade, options)
        .then(finish)
        .catch((e: unknown) => {
          if (options.internalError) options.internalError("a slirp4netns API request", e);
          else log.error("a slirp4netns API request failed", { error: String(e) });
          sock.destroy();
        });
    };
    const timer = setTimeout(handle, timeoutMs);
    timer.unref();
    sock.on("data", (d: Buffer) => {
      if (state !== "reading") return;
      chunks.push(d);
      size += d.length;
      if (size >= maxRequest) {
        log.warn("api request too large", { bytes: size });
        return finish(err("too large message"));
      }
      if (parses(Buffer.concat(chunks).toString("utf8"))) handle();
    });
    sock.on("end", handle);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (e) => log.warn("api socket error", { error: e.message }));
  fs.chmodSync(path, 0o600);
  log.info(`slirp4netns API on ${path}`);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => {
          fs.rmSync(path, { force: true });
          resolve();
        });
      }),
  };
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** slirp4netns unlinks whatever is at the path; we replace only a socket. */
function removeStaleSocket(path: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`--api-socket ${path}: exists and is not a socket`);
  fs.rmSync(path);
}
