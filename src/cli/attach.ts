/**
 * The QEMU command lines that attach a guest to each usernet port of a Config, printed
 * once usernet has started. Every line is pasteable into a POSIX shell after replacing
 * "..." with the guest's own options; values are escaped for QEMU (",,") and quoted
 * for the shell where needed, and a trailing comment names the hub.
 *
 * A port is mirrored: usernet's listener gets a QEMU client (both the 7.2
 * `-netdev stream` and the older `-netdev socket` spelling, which speak the same
 * protocol), usernet's client gets a QEMU listener, a multicast LAN gets the same
 * group, and a UDP pair gets local and remote swapped. A listener on 0.0.0.0 is
 * reached at 127.0.0.1. User netdevs are not ports and get no line.
 */
import type { Config, NetdevConfig } from "../config.js";
import { escapeQemuValue } from "./qemu-opts.js";

const qemu = "qemu-system-x86_64 ...";
const device = "-device virtio-net-pci,netdev=net0";

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

const reach = (host: string) => (host === "" || host === "0.0.0.0" ? "127.0.0.1" : host);

function netdevLines(c: NetdevConfig): string[] {
  const q = escapeQemuValue;
  switch (c.type) {
    case "stream":
      if (c.addr.type === "unix") {
        return [
          `stream,id=net0,server=${c.server ? "off" : "on"},addr.type=unix,addr.path=${q(c.addr.path)}`,
        ];
      }
      return inetLines(!c.server, reach(c.addr.host), c.addr.port);
    case "socket":
      switch (c.mode) {
        case "listen":
          return inetLines(false, reach(c.addr.host), c.addr.port);
        case "connect":
          return inetLines(true, c.addr.host, c.addr.port);
        case "mcast": {
          const local = c.localAddr?.host;
          return [
            `socket,id=net0,mcast=${c.addr.host}:${c.addr.port}${local ? `,localaddr=${local}` : ""}`,
            `dgram,id=net0,remote.type=inet,remote.host=${c.addr.host},remote.port=${c.addr.port}` +
              (local ? `,local.type=inet,local.host=${local},local.port=0` : ""),
          ];
        }
        case "udp":
          return c.localAddr ? udpLines(c.localAddr, c.addr) : [];
      }
      return [];
    case "dgram":
      return c.local?.type === "inet" && c.remote?.type === "inet" ? udpLines(c.local, c.remote) : [];
    case "vde":
      // a guest joins usernet's switch, or the same vde_switch usernet joined
      return [`vde,id=net0,sock=${q(c.dir)}`];
    case "user":
    case "tap":
    case "websocket":
    case "vxlan":
      return [];
  }
}

/** QEMU's side of a TCP link; `qemuListens` when usernet is the client */
function inetLines(qemuListens: boolean, host: string, port: number): string[] {
  const h = escapeQemuValue(host);
  return [
    `stream,id=net0,server=${qemuListens ? "on" : "off"},addr.type=inet,addr.host=${h},addr.port=${port}`,
    `socket,id=net0,${qemuListens ? "listen" : "connect"}=${h}:${port}`,
  ];
}

/** QEMU's side of a UDP pair: its local is usernet's remote and the other way round */
function udpLines(ours: { host: string; port: number }, peer: { host: string; port: number }): string[] {
  const back = `${reach(ours.host)}:${ours.port}`;
  return [
    `socket,id=net0,udp=${back},localaddr=${peer.host}:${peer.port}`,
    `dgram,id=net0,local.type=inet,local.host=${peer.host},local.port=${peer.port},` +
      `remote.type=inet,remote.host=${reach(ours.host)},remote.port=${ours.port}`,
  ];
}

export function formatQemuAttachCommands(config: Config): string[] {
  return config.netdevs.flatMap((c) =>
    netdevLines(c).map(
      (netdev) => `${qemu} -netdev ${shellQuote(netdev)} ${device}  # hub ${c.hub} via ${c.id}`,
    ),
  );
}
