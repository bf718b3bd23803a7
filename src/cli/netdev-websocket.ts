/**
 * `-netdev websocket`: a WebSocket listener whose every connection is a hub port, for
 * VMs that run in a browser (v86, JSLinux, jor1k) and container2wasm.
 *
 *   listen=[HOST]:PORT        required (empty host = 0.0.0.0)
 *   path=/PATH                only this request path (default: any)
 *   framing=raw|qemu          raw (default): one Ethernet frame per binary message;
 *                             qemu: QEMU's 4-byte length framing in the message stream
 *   origin=ORIGIN             a web page origin allowed to connect, such as
 *                             origin=http://localhost:8000 (repeatable; origin=* = any).
 *                             Default none: browsers are refused, programs (no Origin
 *                             header) are accepted
 *   token-file=FILE           clients must present the token in FILE (?token= or
 *                             Authorization: Bearer)
 *   cert=FILE,key=FILE        PEM certificate and key: serve wss://
 */
import type { WebsocketNetdevConfig } from "../config.js";
import { parseHostPort } from "./inet.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

export const websocketSpec: Readonly<Record<string, OptionSpec>> = {
  listen: { kind: "value", form: "[HOST]:PORT such as listen=127.0.0.1:8080" },
  path: { kind: "value", form: "an absolute URL path such as path=/net" },
  framing: { kind: "value", form: "raw or qemu such as framing=raw" },
  origin: {
    kind: "list",
    form: "SCHEME://HOST[:PORT] or * such as origin=http://localhost:8000",
  },
  "token-file": { kind: "value", form: "a file holding the token such as token-file=/run/usernet/ws.token" },
  cert: { kind: "value", form: "a PEM certificate file such as cert=/etc/usernet/ws.crt" },
  key: { kind: "value", form: "a PEM private key file such as key=/etc/usernet/ws.key" },
};

export const websocketRefused: Readonly<Record<string, string>> = {
  connect: "not supported: usernet is the WebSocket server; clients connect to listen=",
};

/** what a browser sends as Origin: scheme://host[:port], no path */
const originPattern = /^[a-z][a-z0-9+.-]*:\/\/[^/\s?#,]+$/i;
const pathPattern = /^\/[A-Za-z0-9._~!$&'()*+;=:@%/-]*$/;

export function buildWebsocketNetdev(opts: OptionSet, id: string, hub: number): WebsocketNetdevConfig {
  const listen = opts.get("listen");
  if (listen === undefined) {
    throw new UsageError(`${opts.where}: listen=[HOST]:PORT is required, such as listen=127.0.0.1:8080`);
  }
  const hp = parseHostPort(listen, 0);
  if (!hp) return opts.fail("listen", listen);
  const framing = opts.get("framing") ?? "raw";
  if (framing !== "raw" && framing !== "qemu") return opts.fail("framing", framing);
  const cfg: WebsocketNetdevConfig = {
    type: "websocket",
    id,
    hub,
    listen: { host: hp.host || "0.0.0.0", port: hp.port },
    framing,
    origins: [],
  };
  const path = opts.get("path");
  if (path !== undefined) {
    if (!pathPattern.test(path)) opts.fail("path", path);
    cfg.path = path;
  }
  for (const o of opts.list("origin")) {
    if (o !== "*" && !originPattern.test(o)) opts.fail("origin", o);
    cfg.origins.push(o);
  }
  const file = (key: string) => {
    const v = opts.get(key);
    if (v !== undefined && (v === "" || v.includes("\0"))) opts.fail(key, v);
    return v;
  };
  const tokenFile = file("token-file");
  if (tokenFile !== undefined) cfg.tokenFile = tokenFile;
  const cert = file("cert");
  const key = file("key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError(`${opts.where}: cert= and key= go together (both PEM files)`);
  }
  if (cert !== undefined && key !== undefined) {
    cfg.cert = cert;
    cfg.key = key;
  }
  return cfg;
}
