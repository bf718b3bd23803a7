/**
 * One `-netdev TYPE,...` or legacy `-net TYPE,...` option → one NetdevConfig.
 *
 * Both spellings put the netdev on a hub (a virtual LAN): `-netdev` takes hubid=N and
 * needs id= (as QEMU requires), `-net` takes the pre-3.0 vlan=N and name= (or id=), and
 * names unnamed netdevs as QEMU did, TYPE.N with N the number of netdevs of that type
 * before it ("user.0", "socket.1"). Ids are QEMU identifiers and must be unique.
 *
 * Guest-side options (`-net nic`, `-net none`) are QEMU's business and refused with a
 * pointer there; other QEMU backends (bridge,
 * l2tpv3, vhost-user, ...) are unknown types.
 */
import type { NetdevConfig } from "../config.js";
import { parseDecimal } from "./inet.js";
import { buildDgramNetdev, dgramRefused, dgramSpec } from "./netdev-dgram.js";
import { buildSocketNetdev, socketRefused, socketSpec } from "./netdev-socket.js";
import { buildStreamNetdev, streamRefused, streamSpec } from "./netdev-stream.js";
import { buildTapNetdev, tapRefused, tapSpec } from "./netdev-tap.js";
import { buildUserNetdev, userRefused, userSpec } from "./netdev-user.js";
import { buildVdeNetdev, vdeRefused, vdeSpec } from "./netdev-vde.js";
import { buildVxlanNetdev, vxlanRefused, vxlanSpec } from "./netdev-vxlan.js";
import { buildWebsocketNetdev, websocketRefused, websocketSpec } from "./netdev-websocket.js";
import { OptionSet, type OptionSpec, parseQemuOptString } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

export type Frontend = "-netdev" | "-net";

export interface NetdevEntry {
  config: NetdevConfig;
  /** the type as written; dgram with a multicast remote becomes a socket config */
  written: string;
  /** how messages name it: "-netdev user,id=n0" */
  origin: string;
  /** not written by the user (defaults, the user netdev made for -redir) */
  implicit?: boolean;
}

const idForm = "an identifier (a letter, then letters, digits, '-', '.', '_') such as id=n0";
const hubForm = (key: string) => `a hub number 0..2147483647 such as ${key}=1`;

const netdevCommon: Record<string, OptionSpec> = {
  id: { kind: "value", form: idForm },
  hubid: { kind: "value", form: hubForm("hubid") },
};
const netCommon: Record<string, OptionSpec> = {
  vlan: { kind: "value", form: hubForm("vlan") },
  name: { kind: "value", form: idForm.replace("id=", "name=") },
  id: { kind: "value", form: idForm },
};
const netdevCommonRefused = { vlan: "belongs to -net; -netdev takes hubid=N" };
const netCommonRefused = { hubid: "belongs to -netdev; -net takes vlan=N" };

const types = {
  user: { spec: userSpec, refused: userRefused, build: buildUserNetdev },
  socket: { spec: socketSpec, refused: socketRefused, build: buildSocketNetdev },
  stream: { spec: streamSpec, refused: streamRefused, build: buildStreamNetdev },
  dgram: { spec: dgramSpec, refused: dgramRefused, build: buildDgramNetdev },
  tap: { spec: tapSpec, refused: tapRefused, build: buildTapNetdev },
  vde: { spec: vdeSpec, refused: vdeRefused, build: buildVdeNetdev },
  websocket: { spec: websocketSpec, refused: websocketRefused, build: buildWebsocketNetdev },
  vxlan: { spec: vxlanSpec, refused: vxlanRefused, build: buildVxlanNetdev },
} as const;

const isType = (t: string): t is keyof typeof types => Object.hasOwn(types, t);

const guestTypes = new Set(["nic", "none"]);

export const isIdentifier = (s: string): boolean => /^[A-Za-z][A-Za-z0-9._-]*$/.test(s);

/** the netdevs of one command line, in order, with unique ids */
export class NetdevList {
  readonly entries: NetdevEntry[] = [];

  /** parses and appends one -netdev/-net option value */
  add(frontend: Frontend, value: string): NetdevConfig {
    if (value.trimStart().startsWith("{")) {
      throw new UsageError(`${frontend}: JSON syntax is not supported; use ${frontend} TYPE,key=value,...`);
    }
    const { type, items } = parseQemuOptString(value);
    if (type === undefined || type === "") {
      throw new UsageError(
        `${frontend}: missing type: expected TYPE,key=value,... such as ${frontend} user,id=n0`,
      );
    }
    const where = `${frontend} ${type}`;
    if (guestTypes.has(type)) {
      throw new UsageError(
        `${where}: is a QEMU guest option; it belongs on the QEMU command line, not usernet's`,
      );
    }
    if (type === "hubport") throw new UsageError(`${where}: not needed: every -netdev takes hubid=N`);
    if (!isType(type)) {
      throw new UsageError(
        `${frontend}: unknown type "${type}" (accepted: ${Object.keys(types).join(", ")})`,
      );
    }
    const t = types[type];
    const legacy = frontend === "-net";
    const spec = { ...(legacy ? netCommon : netdevCommon), ...t.spec };
    const refused = { ...(legacy ? netCommonRefused : netdevCommonRefused), ...t.refused };
    const opts = new OptionSet(where, items, spec, refused);

    const hubKey = legacy ? "vlan" : "hubid";
    const hubText = opts.get(hubKey);
    const hub = hubText === undefined ? 0 : parseDecimal(hubText, 0, 2147483647);
    if (hub === undefined) return opts.fail(hubKey, hubText ?? "");

    let id = opts.get("id");
    const name = opts.get("name");
    if (id !== undefined && name !== undefined) {
      throw new UsageError(`${where}: give either id= or name=, not both`);
    }
    if (id === undefined && name !== undefined) {
      if (!isIdentifier(name)) opts.fail("name", name);
      id = name;
    } else if (id !== undefined) {
      if (!isIdentifier(id)) opts.fail("id", id);
    } else if (legacy) {
      id = this.generatedId(type);
    } else {
      throw new UsageError(`${where}: id= is required, such as ${where},id=n0`);
    }
    const config = t.build(opts, id, hub);
    this.push({ config, written: type, origin: `${where},id=${id}` });
    return config;
  }

  /** appends a netdev that no option spelled out (defaults, -redir's user netdev) */
  push(entry: NetdevEntry): void {
    const other = this.entries.find((e) => e.config.id === entry.config.id);
    if (other)
      throw new UsageError(`${entry.origin}: id ${entry.config.id} is already used by ${other.origin}`);
    this.entries.push(entry);
  }

  /** QEMU's name for an unnamed netdev: TYPE.N, N counting the netdevs of that type */
  generatedId(type: string): string {
    let n = this.entries.filter((e) => e.written === type).length;
    while (this.entries.some((e) => e.config.id === `${type}.${n}`)) n++;
    return `${type}.${n}`;
  }
}
