/**
 * `-netdev socket`: QEMU's original frame transports, one of
 *   listen=[HOST]:PORT     TCP server for QEMU clients (empty host = 0.0.0.0)
 *   connect=HOST:PORT      TCP client to a QEMU `listen=`
 *   mcast=GROUP:PORT[,localaddr=ADDR]   UDP multicast LAN (group in 224.0.0.0/4)
 *   udp=HOST:PORT,localaddr=[HOST]:PORT  one UDP peer
 * Exactly one is required, as in QEMU. `fd=` is refused: usernet is not started by a
 * parent that hands it sockets. Host names are allowed for TCP/UDP peers (QEMU
 * resolves them too); multicast groups and interfaces must be addresses.
 */
import type { SocketNetdevConfig } from "../config.js";
import { isIpv4Multicast, parseIpv4 } from "../stack/wire/addr.js";
import { parseHostPort } from "./inet.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

export const socketSpec: Readonly<Record<string, OptionSpec>> = {
  listen: { kind: "value", form: "[HOST]:PORT such as listen=127.0.0.1:8010" },
  connect: { kind: "value", form: "HOST:PORT such as connect=127.0.0.1:8010" },
  mcast: { kind: "value", form: "GROUP:PORT with GROUP in 224.0.0.0/4 such as mcast=230.0.0.1:1234" },
  udp: { kind: "value", form: "HOST:PORT such as udp=127.0.0.1:8012" },
  localaddr: {
    kind: "value",
    form: "ADDR with mcast= (localaddr=127.0.0.1) or [HOST]:PORT with udp= (localaddr=127.0.0.1:8011)",
  },
};

export const socketRefused: Readonly<Record<string, string>> = {
  fd: "not supported: usernet does not take file descriptors from a parent",
};

const modes = ["listen", "connect", "mcast", "udp"] as const;

export function buildSocketNetdev(opts: OptionSet, id: string, hub: number): SocketNetdevConfig {
  const given = modes.filter((m) => opts.has(m));
  const mode = given[0];
  if (mode === undefined || given.length > 1) {
    throw new UsageError(`${opts.where}: exactly one of listen=, connect=, mcast= or udp= is required`);
  }
  const value = opts.get(mode) ?? "";
  const hp = parseHostPort(value);
  if (!hp) return opts.fail(mode, value);
  const local = opts.get("localaddr");
  const base = { type: "socket" as const, id, hub, mode };
  switch (mode) {
    case "listen":
    case "connect":
      if (local !== undefined) opts.fail("localaddr", local, "goes only with mcast= or udp=");
      if (mode === "connect" && hp.host === "")
        opts.fail(mode, value, "needs a host, such as connect=127.0.0.1:8010");
      return { ...base, addr: { host: hp.host || "0.0.0.0", port: hp.port } };
    case "mcast": {
      const group = parseIpv4(hp.host);
      if (group === undefined || !isIpv4Multicast(group)) return opts.fail(mode, value);
      const cfg: SocketNetdevConfig = { ...base, addr: hp };
      if (local !== undefined) {
        if (parseIpv4(local) === undefined)
          opts.fail("localaddr", local, "expected an IPv4 address with mcast=");
        cfg.localAddr = { host: local, port: 0 };
      }
      return cfg;
    }
    case "udp": {
      if (hp.host === "") opts.fail(mode, value, "needs a host, such as udp=127.0.0.1:8012");
      if (local === undefined) {
        throw new UsageError(`${opts.where}: localaddr=[HOST]:PORT is required with udp=`);
      }
      const lp = parseHostPort(local);
      if (!lp) return opts.fail("localaddr", local, "expected [HOST]:PORT with udp=");
      return { ...base, addr: hp, localAddr: { host: lp.host || "0.0.0.0", port: lp.port } };
    }
  }
}
