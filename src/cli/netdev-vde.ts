/**
 * `-netdev vde`: a VDE (Virtual Distributed Ethernet) switch port (needs the native
 * addon, for unix datagram sockets).
 *
 *   sock=DIR              join the vde_switch whose directory (holding `ctl`) is DIR,
 *                         as QEMU's -netdev vde does
 *   port=N                the switch port to ask for (default 0: any free one)
 *   group=GROUP           group (name or number) of our data socket, so a switch
 *                         running as another user can send to it
 *   mode=OCTAL            mode of our data socket (default 0700, as QEMU)
 *   listen=DIR            usernet's extension: be the switch at DIR; VDE clients
 *                         (qemu -netdev vde,sock=DIR, vde_plug DIR) each become a port
 *
 * Exactly one of sock= and listen= is given; port=, group= and mode= go with sock=.
 */
import type { VdeNetdevConfig } from "../config.js";
import { parseDecimal } from "./inet.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

const dirForm = (key: string) => `a directory path of at most 100 bytes such as ${key}=/tmp/vde.sw`;

export const vdeSpec: Readonly<Record<string, OptionSpec>> = {
  sock: { kind: "value", form: dirForm("sock") },
  listen: { kind: "value", form: dirForm("listen") },
  port: { kind: "value", form: "a switch port 0..16777215 such as port=3" },
  group: { kind: "value", form: "a group name or number such as group=kvm" },
  mode: { kind: "value", form: "octal permissions such as mode=0770" },
};

export const vdeRefused: Readonly<Record<string, string>> = {};

/** DIR/ctl and the data sockets in DIR must fit in sun_path (108 bytes with NUL) */
const isDir = (s: string) => s !== "" && !s.includes("\0") && Buffer.byteLength(s) <= 100;

export function buildVdeNetdev(opts: OptionSet, id: string, hub: number): VdeNetdevConfig {
  const where = opts.where;
  const sock = opts.get("sock");
  const listen = opts.get("listen");
  if ((sock === undefined) === (listen === undefined)) {
    throw new UsageError(
      `${where}: give sock=DIR (join a vde_switch) or listen=DIR (be the switch), exactly one of them`,
    );
  }
  if (listen !== undefined) {
    if (!isDir(listen)) return opts.fail("listen", listen);
    for (const k of ["port", "group", "mode"])
      if (opts.has(k)) throw new UsageError(`${where}: ${k}= belongs to sock= (joining a switch)`);
    return { type: "vde", id, hub, mode: "listen", dir: listen };
  }
  const dir = sock as string;
  if (!isDir(dir)) return opts.fail("sock", dir);
  const cfg: VdeNetdevConfig = { type: "vde", id, hub, mode: "join", dir };
  const portText = opts.get("port");
  if (portText !== undefined) {
    const port = parseDecimal(portText, 0, 0xffffff);
    if (port === undefined) return opts.fail("port", portText);
    if (port !== 0) cfg.port = port;
  }
  const group = opts.get("group");
  if (group !== undefined) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(group)) return opts.fail("group", group);
    cfg.group = group;
  }
  const modeText = opts.get("mode");
  if (modeText !== undefined) {
    if (!/^[0-7]{1,4}$/.test(modeText)) return opts.fail("mode", modeText);
    cfg.permissions = Number.parseInt(modeText, 8);
  }
  return cfg;
}
