/**
 * Opens the frame transport a `-netdev socket|stream|dgram|tap` describes and attaches
 * its port(s) to a hub: the one entry point for every kind of port netdev (the
 * composition root's, and the API's for the kinds it may add at run time).
 *
 * What maps where (QEMU 7.2 grammar, as the CLI has already parsed it):
 *   socket,listen=[host]:port        → StreamListener (TCP), kind "socket-listen"
 *   socket,connect=host:port         → StreamConnector (TCP), kind "socket-connect"
 *   stream,server=on,addr.type=...   → StreamListener (TCP or unix), kind "stream-listen"
 *   stream,server=off,addr.type=...  → StreamConnector (TCP or unix), kind "stream-connect"
 *   socket,udp=H:P,localaddr=H:P     → unicast DatagramPort, kind "dgram"
 *   dgram,local...,remote... (unicast) → unicast DatagramPort, kind "dgram"
 *   socket,mcast=G:P[,localaddr=A]   → multicast DatagramPort, kind "mcast"
 *   dgram,remote.host=G (multicast)  → multicast DatagramPort, kind "mcast"
 *   vxlan,vni=N,remote=...|group=... → VxlanPort (vxlan-port.ts), kind "vxlan"
 *   tap,ifname=...[,netns=...]       → TapPort (tap-port.ts), kind "tap"; the TAP port and
 *                                      the native addon load only when a TAP is asked for;
 *                                      script=/downscript= run around it (tap-script.ts)
 *   vde,sock=DIR                     → VdePort on a vde_switch (vde-port.ts), kind "vde"
 *   vde,listen=DIR                   → VdeListener (vde-listener.ts), kind "vde-listen":
 *                                      usernet is the switch; loaded only when asked for
 *   websocket,listen=HOST:PORT       → WebsocketListener (websocket-listener.ts), kind
 *                                      "websocket"; it and `ws` load only when asked for
 * Unix datagram sockets are refused (Node has none). A listener or a bind that fails
 * rejects with an Error naming the address; a connector never fails, it retries.
 * `close()` detaches the port(s) from the hub and closes them.
 */
import type {
  DgramNetdevConfig,
  SocketNetdevConfig,
  StreamNetdevConfig,
  TapNetdevConfig,
  VdeNetdevConfig,
  VxlanNetdevConfig,
  WebsocketNetdevConfig,
} from "../config.js";
import type { Hub } from "../hub/hub.js";
import type { Port } from "../hub/port.js";
import type { Logger } from "../log.js";
import type { NativeError } from "../native/binding.js";
import type { StreamAddress } from "./address.js";
import { openUdpPort, type UdpEndpoint } from "./dgram-port.js";
import { isMulticastAddress, openMcastPort } from "./mcast-port.js";
import type { NetdevHandle } from "./netdev-handle.js";
import { StreamConnector, type StreamConnectorOptions } from "./stream-connector.js";
import { StreamListener } from "./stream-listener.js";
import type { TapPort } from "./tap-port.js";

/** The port netdevs the API may add at run time. */
export type PortNetdevConfig =
  | SocketNetdevConfig
  | StreamNetdevConfig
  | DgramNetdevConfig
  | VdeNetdevConfig
  | WebsocketNetdevConfig
  | VxlanNetdevConfig;

export type { NetdevHandle };

/** Tuning knobs; defaults suit a service. */
export interface NetdevOptions {
  maxClients?: number;
  maxQueuedBytes?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  connectTimeoutMs?: number;
  /** a TAP's device stopped working (e.g. its namespace is gone); default: logged only */
  onTapFailure?: (err: NativeError) => void;
  /** a listener's inherited socket (systemd socket activation) instead of binding */
  listenFd?: number;
}

export async function openNetdev(
  cfg: PortNetdevConfig | TapNetdevConfig,
  hub: Hub,
  log: Logger,
  options: NetdevOptions = {},
): Promise<NetdevHandle> {
  const plog = log.child({ netdev: cfg.id });
  switch (cfg.type) {
    case "tap": {
      const { openTapNetdev } = await import("./tap-port.js");
      const handle = openTapNetdev(cfg, hub, log, { onFailure: options.onTapFailure });
      return cfg.script || cfg.downscript ? withScripts(cfg, handle, plog) : handle;
    }
    case "vde": {
      if (cfg.mode === "listen") {
        const { openVdeListener } = await import("./vde-listener.js");
        return openVdeListener({
          id: cfg.id,
          dir: cfg.dir,
          hub,
          log: plog,
          maxClients: options.maxClients,
        });
      }
      const { openVdeJoin } = await import("./vde-port.js");
      return openVdeJoin(
        { id: cfg.id, sock: cfg.dir, port: cfg.port, group: cfg.group, mode: cfg.permissions, log: plog },
        hub,
      );
    }
    case "websocket": {
      const { openWebsocketNetdev } = await import("./websocket-listener.js");
      return openWebsocketNetdev(cfg, hub, plog, options);
    }
    case "socket": {
      const inet: StreamAddress = { type: "inet", host: cfg.addr.host, port: cfg.addr.port };
      switch (cfg.mode) {
        case "listen":
          return listen(cfg.id, "socket-listen", inet, hub, plog, options);
        case "connect":
          return connect(cfg.id, "socket-connect", inet, 0, hub, plog, options);
        case "mcast":
          return datagram(cfg.id, hub, () =>
            openMcastPort({
              name: cfg.id,
              log: plog,
              group: cfg.addr,
              localAddr: cfg.localAddr?.host,
              maxQueuedBytes: options.maxQueuedBytes,
            }),
          );
        case "udp":
          return datagram(cfg.id, hub, () =>
            openUdpPort({
              name: cfg.id,
              log: plog,
              local: cfg.localAddr,
              remote: cfg.addr,
              maxQueuedBytes: options.maxQueuedBytes,
            }),
          );
      }
      break;
    }
    case "vxlan": {
      const { openVxlanPort } = await import("./vxlan-port.js");
      const port = await openVxlanPort({
        name: cfg.id,
        log: plog,
        vni: cfg.vni,
        remotes: cfg.remotes,
        group: cfg.group,
        dev: cfg.dev,
        local: cfg.local,
        dstport: cfg.dstport,
        ageingMs: cfg.ageingSeconds === undefined ? undefined : cfg.ageingSeconds * 1000,
        maxMacs: cfg.maxMacs,
        maxQueuedBytes: options.maxQueuedBytes,
      });
      return datagram(cfg.id, hub, async () => port);
    }
    case "stream":
      return cfg.server
        ? listen(cfg.id, "stream-listen", cfg.addr, hub, plog, options)
        : connect(cfg.id, "stream-connect", cfg.addr, cfg.reconnect, hub, plog, options);
    case "dgram": {
      const { local, remote } = cfg;
      if (local?.type === "unix" || remote?.type === "unix") {
        throw new Error(`${cfg.id}: unix datagram sockets are not supported; use type=inet`);
      }
      if (!remote) throw new Error(`${cfg.id}: dgram needs remote= (a unicast peer or a multicast group)`);
      const to: UdpEndpoint = { host: remote.host, port: remote.port };
      if (isMulticastAddress(remote.host)) {
        return datagram(cfg.id, hub, () =>
          openMcastPort({
            name: cfg.id,
            log: plog,
            group: to,
            localAddr: local?.host,
            maxQueuedBytes: options.maxQueuedBytes,
          }),
        );
      }
      return datagram(cfg.id, hub, () =>
        openUdpPort({
          name: cfg.id,
          log: plog,
          local: local ? { host: local.host, port: local.port } : undefined,
          remote: to,
          maxQueuedBytes: options.maxQueuedBytes,
        }),
      );
    }
  }
  throw new Error(`unsupported netdev ${JSON.stringify(cfg)}`);
}

/**
 * QEMU's order: the ifup script once the device exists (its failure closes the TAP and
 * fails the netdev), the ifdown script on close before the device goes.
 */
async function withScripts(cfg: TapNetdevConfig, handle: NetdevHandle, log: Logger): Promise<NetdevHandle> {
  const { runNetworkScript } = await import("./tap-script.js");
  const ifname = (handle.ports()[0] as TapPort | undefined)?.ifname ?? cfg.ifname;
  const run = { netns: cfg.netns, log };
  if (cfg.script) {
    try {
      await runNetworkScript(cfg.script, ifname, run);
    } catch (e) {
      await handle.close();
      throw new Error(`-netdev tap,id=${cfg.id}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const down = cfg.downscript;
  if (!down) return handle;
  let closing: Promise<void> | undefined;
  return {
    ...handle,
    describe: () => handle.describe(),
    ports: () => handle.ports(),
    close: () => {
      closing ??= runNetworkScript(down, ifname, run)
        .catch((e: unknown) =>
          log.warn(`${e instanceof Error ? e.message : String(e)} (the TAP closes anyway)`, { tap: ifname }),
        )
        .then(() => handle.close());
      return closing;
    },
  };
}

async function listen(
  id: string,
  kind: string,
  address: StreamAddress,
  hub: Hub,
  log: Logger,
  options: NetdevOptions,
): Promise<NetdevHandle> {
  const listener = await StreamListener.open({
    id,
    kind,
    address,
    hub,
    log,
    maxClients: options.maxClients,
    maxQueuedBytes: options.maxQueuedBytes,
    fd: options.listenFd,
  });
  return {
    id,
    kind,
    address: listener.address,
    describe: () => listener.describe(),
    ports: () => listener.clients(),
    close: () => listener.close(),
  };
}

function connect(
  id: string,
  kind: string,
  address: StreamAddress,
  reconnectSeconds: number,
  hub: Hub,
  log: Logger,
  options: NetdevOptions,
): NetdevHandle {
  const connectorOptions: StreamConnectorOptions = {
    id,
    kind,
    address,
    log,
    reconnectSeconds,
    initialBackoffMs: options.initialBackoffMs,
    maxBackoffMs: options.maxBackoffMs,
    connectTimeoutMs: options.connectTimeoutMs,
    maxQueuedBytes: options.maxQueuedBytes,
  };
  const connector = new StreamConnector(connectorOptions);
  hub.attach(connector.port);
  connector.start();
  return {
    id,
    kind,
    describe: () => connector.describe(),
    ports: () => (connector.port.closed ? [] : [connector.port]),
    close: async () => {
      hub.detach(connector.port);
      connector.close();
    },
  };
}

interface DatagramLike extends Port {
  localAddress(): { host: string; port: number };
}

async function datagram(id: string, hub: Hub, open: () => Promise<DatagramLike>): Promise<NetdevHandle> {
  const port = await open();
  try {
    hub.attach(port);
  } catch (err) {
    port.close();
    throw err;
  }
  let closed = false;
  return {
    id,
    kind: port.kind,
    address: { type: "inet", ...port.localAddress() },
    describe: () => port.describe(),
    ports: () => (closed ? [] : [port]),
    close: async () => {
      closed = true;
      hub.detach(port);
      port.close();
    },
  };
}
