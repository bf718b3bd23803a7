/**
 * `-netdev dgram` (QEMU 7.2): one Ethernet frame per UDP datagram.
 *
 *   local.type=inet,local.host=HOST,local.port=PORT     where usernet binds
 *   remote.type=inet,remote.host=HOST,remote.port=PORT  the peer
 *
 * Both are required for a unicast peer, as in QEMU. When remote.host is a multicast
 * group (224.0.0.0/4) the netdev is a multicast LAN, the same wire format as
 * `-netdev socket,mcast=`, and is produced as a SocketNetdevConfig with mode "mcast"
 * (the one multicast transport); local.host is then the interface address and
 * local.port is ignored, as QEMU ignores it. type=unix is refused: Node has no unix
 * datagram sockets. type=fd is refused: nothing hands usernet descriptors.
 */
import type { DgramNetdevConfig, SocketNetdevConfig } from "../config.js";
import { isIpv4Multicast, parseIpv4 } from "../stack/wire/addr.js";
import { isHost, parsePort } from "./inet.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

const side = (s: "local" | "remote", port: number): Record<string, OptionSpec> => ({
  [`${s}.type`]: { kind: "value", form: `inet such as ${s}.type=inet` },
  [`${s}.host`]: { kind: "value", form: `HOST such as ${s}.host=127.0.0.1` },
  [`${s}.port`]: { kind: "value", form: `1..65535 such as ${s}.port=${port}` },
});

export const dgramSpec: Readonly<Record<string, OptionSpec>> = {
  ...side("local", 8011),
  ...side("remote", 8012),
};

const noUnix = "not supported: Node has no unix datagram sockets";
const noFd = "not supported: usernet does not take file descriptors from a parent";
export const dgramRefused: Readonly<Record<string, string>> = {
  "local.path": noUnix,
  "remote.path": noUnix,
  "local.str": noFd,
  "remote.str": noFd,
};

interface Side {
  host: string;
  port: string;
}

/** the keys of one side, or undefined when none is given */
function readSide(opts: OptionSet, s: "local" | "remote"): Side | undefined {
  const type = opts.get(`${s}.type`);
  const host = opts.get(`${s}.host`);
  const port = opts.get(`${s}.port`);
  if (type === undefined && host === undefined && port === undefined) return undefined;
  if (type === undefined)
    throw new UsageError(`${opts.where}: ${s}.type= is required: inet such as ${s}.type=inet`);
  if (type === "unix") opts.fail(`${s}.type`, type, noUnix);
  if (type === "fd") opts.fail(`${s}.type`, type, noFd);
  if (type !== "inet") opts.fail(`${s}.type`, type);
  if (host === undefined) throw new UsageError(`${opts.where}: ${s}.host= is required with ${s}.type=inet`);
  if (port === undefined) throw new UsageError(`${opts.where}: ${s}.port= is required with ${s}.type=inet`);
  return { host, port };
}

export function buildDgramNetdev(
  opts: OptionSet,
  id: string,
  hub: number,
): DgramNetdevConfig | SocketNetdevConfig {
  const where = opts.where;
  const local = readSide(opts, "local");
  const remote = readSide(opts, "remote");
  if (!remote) {
    throw new UsageError(`${where}: remote.type=inet,remote.host=HOST,remote.port=PORT is required`);
  }
  const remotePort = parsePort(remote.port);
  if (remotePort === undefined) return opts.fail("remote.port", remote.port);
  const group = parseIpv4(remote.host);
  if (group !== undefined && isIpv4Multicast(group)) {
    const cfg: SocketNetdevConfig = {
      type: "socket",
      id,
      hub,
      mode: "mcast",
      addr: { host: remote.host, port: remotePort },
    };
    if (local) {
      if (parseIpv4(local.host) === undefined) {
        opts.fail(
          "local.host",
          local.host,
          "expected the IPv4 address of an interface with a multicast remote",
        );
      }
      cfg.localAddr = { host: local.host, port: 0 };
    }
    return cfg;
  }
  if (!isHost(remote.host)) opts.fail("remote.host", remote.host);
  if (!local) {
    throw new UsageError(
      `${where}: local.type=inet,local.host=HOST,local.port=PORT is required with a unicast remote`,
    );
  }
  if (local.host !== "" && !isHost(local.host)) opts.fail("local.host", local.host);
  const localPort = parsePort(local.port);
  if (localPort === undefined) return opts.fail("local.port", local.port);
  return {
    type: "dgram",
    id,
    hub,
    local: { type: "inet", host: local.host || "0.0.0.0", port: localPort },
    remote: { type: "inet", host: remote.host, port: remotePort },
  };
}
