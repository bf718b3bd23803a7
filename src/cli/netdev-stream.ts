/**
 * `-netdev stream` (QEMU 7.2): the socket protocol over TCP or a unix socket, as
 * server (many QEMU clients) or client.
 *
 *   server=on|off (default off, as QEMU), addr.type=inet|unix,
 *   addr.host=HOST, addr.port=PORT   (inet; an empty host on a server = 0.0.0.0)
 *   addr.path=PATH                   (unix; at most 107 bytes, the sun_path limit)
 *   reconnect=SECONDS                (client only; QEMU 8 spelling)
 *
 * Accepted because they change nothing here: addr.numeric (with on, the host must be
 * an address), addr.keep-alive=off, addr.ipv4=on, addr.ipv6=off. Refused, each with a
 * reason: addr.type=fd or vsock, addr.to (port ranges), addr.keep-alive=on,
 * addr.ipv4=off, addr.ipv6=on, abstract and tight unix sockets.
 */
import type { StreamNetdevConfig } from "../config.js";
import { parseIpv4 } from "../stack/wire/addr.js";
import { isHost, parseDecimal, parsePort } from "./inet.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

export const streamSpec: Readonly<Record<string, OptionSpec>> = {
  server: { kind: "bool", form: "on or off such as server=on" },
  "addr.type": { kind: "value", form: "inet or unix such as addr.type=inet" },
  "addr.host": { kind: "value", form: "HOST such as addr.host=127.0.0.1" },
  "addr.port": { kind: "value", form: "1..65535 such as addr.port=8010" },
  "addr.path": {
    kind: "value",
    form: "a socket path of at most 107 bytes such as addr.path=/run/usernet.sock",
  },
  "addr.numeric": { kind: "bool", form: "on or off such as addr.numeric=on" },
  "addr.keep-alive": { kind: "bool", form: "off (keep-alive is not supported) such as addr.keep-alive=off" },
  "addr.ipv4": { kind: "bool", form: "on (IPv4 only) such as addr.ipv4=on" },
  "addr.ipv6": { kind: "bool", form: "off (IPv4 only) such as addr.ipv6=off" },
  reconnect: { kind: "value", form: "seconds 0..86400 such as reconnect=5" },
};

export const streamRefused: Readonly<Record<string, string>> = {
  "addr.to": "not supported: usernet listens on exactly the port given",
  "addr.str": "not supported: usernet does not take file descriptors from a parent",
  "addr.abstract": "not supported: abstract unix sockets",
  "addr.tight": "not supported: abstract unix sockets",
  "addr.mptcp": "not supported",
};

const inetKeys = ["addr.host", "addr.port", "addr.numeric", "addr.keep-alive", "addr.ipv4", "addr.ipv6"];

export function buildStreamNetdev(opts: OptionSet, id: string, hub: number): StreamNetdevConfig {
  const where = opts.where;
  const server = opts.bool("server", false);
  const type = opts.get("addr.type");
  const reconnectText = opts.get("reconnect");
  let reconnect = 0;
  if (reconnectText !== undefined) {
    if (server) opts.fail("reconnect", reconnectText, "only for clients (server=off)");
    const r = parseDecimal(reconnectText, 0, 86400);
    if (r === undefined) return opts.fail("reconnect", reconnectText);
    reconnect = r;
  }
  const base = { type: "stream" as const, id, hub, server, reconnect };
  if (type === undefined)
    throw new UsageError(`${where}: addr.type= is required: inet or unix such as addr.type=inet`);
  if (type === "fd")
    opts.fail("addr.type", type, "not supported: usernet does not take file descriptors from a parent");
  if (type === "vsock") opts.fail("addr.type", type, "not supported");
  if (type === "unix") {
    for (const k of inetKeys)
      if (opts.has(k)) throw new UsageError(`${where}: ${k}= belongs to addr.type=inet`);
    const path = opts.get("addr.path");
    if (path === undefined) throw new UsageError(`${where}: addr.path= is required with addr.type=unix`);
    if (path === "" || path.includes("\0") || Buffer.byteLength(path) > 107) opts.fail("addr.path", path);
    return { ...base, addr: { type: "unix", path } };
  }
  if (type !== "inet") return opts.fail("addr.type", type);
  if (opts.has("addr.path")) throw new UsageError(`${where}: addr.path= belongs to addr.type=unix`);
  if (opts.bool("addr.keep-alive", false)) opts.fail("addr.keep-alive", opts.get("addr.keep-alive") ?? "");
  if (!opts.bool("addr.ipv4", true)) opts.fail("addr.ipv4", opts.get("addr.ipv4") ?? "");
  if (opts.bool("addr.ipv6", false)) opts.fail("addr.ipv6", opts.get("addr.ipv6") ?? "");
  const host = opts.get("addr.host");
  const portText = opts.get("addr.port");
  if (host === undefined) throw new UsageError(`${where}: addr.host= is required with addr.type=inet`);
  if (portText === undefined) throw new UsageError(`${where}: addr.port= is required with addr.type=inet`);
  if (host === "" ? !server : !isHost(host)) opts.fail("addr.host", host);
  if (opts.bool("addr.numeric", false) && host !== "" && parseIpv4(host) === undefined) {
    opts.fail("addr.host", host, "addr.numeric=on needs an IPv4 address");
  }
  const port = parsePort(portText);
  if (port === undefined) return opts.fail("addr.port", portText);
  return { ...base, addr: { type: "inet", host: host || "0.0.0.0", port } };
}
