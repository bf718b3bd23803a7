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
 *   tap,ifname=...[,netns=...]       → TapPort (tap-port.ts), kind "tap"; the TAP port and
 *                                      the native addon load only when a TAP is asked for
 * Unix datagram sockets are refused (Node has none). A listener or a bind that fails
 * rejects with an Error naming the address; a connector never fails, it retries.
 * `close()` detaches the port(s) from the hub and closes them.
 */
import type {
  DgramNetdevConfig,
  SocketNetdevConfig,
  StreamNetdevConfig,
  TapNetdevConfig,
} from "../config.js";
import type { Hub } from "../hub/hub.js";
import type { Logger } from "../log.js";
import type { NativeError } from "../native/binding.js";
import type { StreamAddress } from "./address.js";
import { type DatagramPort, openUdpPort, type UdpEndpoint } from "./dgram-port.js";
import { isMulticastAddress, openMcastPort } from "./mcast-port.js";
import type { NetdevHandle } from "./netdev-handle.js";
import { StreamConnector, type StreamConnectorOptions } from "./stream-connector.js";
import { StreamListener } from "./stream-listener.js";

/** The port netdevs the API may add at run time. */
export type PortNetdevConfig = SocketNetdevConfig | StreamNetdevConfig | DgramNetdevConfig;

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
      return openTapNetdev(cfg, hub, log, { onFailure: options.onTapFailure });
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

async function datagram(id: string, hub: Hub, open: () => Promise<DatagramPort>): Promise<NetdevHandle> {
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
    address: port.localAddress(),
    describe: () => port.describe(),
    ports: () => (closed ? [] : [port]),
    close: async () => {
      closed = true;
      hub.detach(port);
      port.close();
    },
  };
}
