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
 * - The socket is created mode 0600; a stale socket file at PATH (nobody answers a
 *   connect) is replaced, a live one or anything else there is an error; the file is
 *   removed on close.
 */
import * as fs from "node:fs";
import net from "node:net";
import { checkHostForward, type HostForwardField } from "../forward-rule.js";
import { clearStaleSocket } from "../ports/unix-socket.js";
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
/** the slirp4netns name of each rule field, for its "bad arguments.NAME" */
const argName: Record<HostForwardField, string> = {
  proto: "proto",
  hostAddr: "host_addr",
  hostPort: "host_port",
  guestAddr: "guest_addr",
  guestPort: "guest_port",
  preserveSource: "preserve_source",
};

const err = (desc: string) => JSON.stringify({ error: { desc: `bad request: ${desc}` } });

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
      // the fields as forward-rule.ts checks every rule; a missing host address is every address
      const hostAddr = args.host_addr === undefined || args.host_addr === "" ? "0.0.0.0" : args.host_addr;
      const guestAddr =
        args.guest_addr === undefined || args.guest_addr === ""
          ? (options.defaultGuestAddr ?? "")
          : args.guest_addr;
      const checked = checkHostForward({
        proto: args.proto,
        hostAddr,
        // slirp4netns has no "any free port": host port 0 is as wrong as 70000
        hostPort: args.host_port === 0 ? Number.NaN : args.host_port,
        guestAddr,
        guestPort: args.guest_port,
      });
      if (!checked.ok) return err(`add_hostfwd: bad arguments.${argName[checked.field]}`);
      try {
        const rule = checked.value;
        const v = await facade.add(options.netdev, {
          ...rule,
          hostAddr: rule.hostAddr === "0.0.0.0" ? "" : rule.hostAddr,
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
      if (typeof id !== "number" || !Number.isInteger(id)) return err("remove_hostfwd: bad arguments.id");
      const removed = await facade.remove(id).catch((e: unknown) => {
        log.warn(`remove_hostfwd refused: ${e instanceof Error ? e.message : String(e)}`);
        return undefined;
      });
      if (removed === undefined) return err("remove_hostfwd: slirp_remove_hostfwd failed");
      if (!removed) return err("remove_hostfwd: bad arguments.id");
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
  // slirp4netns unlinks whatever is at the path; we replace only a dead socket
  await clearStaleSocket(path, (why) => new Error(`--api-socket ${path}: ${why}`));
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
          try {
            fs.rmSync(path, { force: true });
          } catch (e) {
            // under --enable-sandbox (Landlock) the socket's directory is read-only to
            // us: the socket stays for its owner (Podman's run directory) to remove
            log.debug(`api socket ${path} not removed: ${(e as Error).message}`);
          }
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
