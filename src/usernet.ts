/**
 * The composition root: builds hubs, ports (through ports/netdev.ts, one entry point
 * for every port kind), user netdevs and the management APIs from one Config, and
 * hands the API the control and forwards facades (src/control.ts, src/forwards.ts),
 * which implement what the API declares it needs (src/api/service.ts). Each user
 * netdev builds its own stack, services and NAT (src/user-netdev.ts).
 */
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { RunningApi } from "./api/server.js";
import type { Slirp4netnsApi } from "./api/slirp4netns-api.js";
import type { Config, NetdevConfig } from "./config.js";
import { type Control, createControl } from "./control.js";
import { Forwards, type ForwardsFacade } from "./forwards.js";
import { setTrim } from "./frame-gc.js";
import { HubRegistry } from "./hub/hub.js";
import { internalErrors, type Logger } from "./log.js";
import { type NativeError, trimMemory } from "./native/binding.js";
import { type NetdevHandle, openNetdev } from "./ports/netdev.js";
import { UserNetdev } from "./user-netdev.js";

export type { ApiConfig } from "./config.js";
export * from "./control.js";
export { ForwardError, type ForwardErrorReason, type ForwardsFacade, type ForwardView } from "./forwards.js";
export type { Logger } from "./log.js";
export type { PortNetdevConfig } from "./ports/netdev.js";

/** The control facade (src/control.ts) is what the management API and `usernet ctl` see. */
export interface Usernet extends Control {
  /** port forwards of every user netdev: list, add and remove at run time */
  readonly forwards: ForwardsFacade;
  close(): Promise<void>;
}

export interface UsernetOptions {
  /** a TAP port's device stopped working (e.g. its namespace is gone); default: logged only */
  onTapFailure?: (netdevId: string, err: NativeError) => void;
  /** shown by the API's status and metrics */
  version?: string;
}

export async function startUsernet(
  config: Config,
  log: Logger,
  options: UsernetOptions = {},
): Promise<Usernet> {
  const hubs = new HubRegistry({ log });
  const users: UserNetdev[] = [];
  const handles: NetdevHandle[] = [];
  let slirpApi: Slirp4netnsApi | undefined;
  let api: RunningApi | undefined;

  const close = async () => {
    await api?.close();
    await slirpApi?.close();
    await Promise.allSettled(handles.map((h) => h.close()));
    for (const u of users) {
      hubs.find(u.config.hub)?.detach(u);
      u.close();
    }
    // smbd is stopped (by pid) and its directory removed before close resolves
    await Promise.allSettled(users.map((u) => u.whenClosed()));
    await forwards?.flush();
    hubs.close();
  };

  // read once, only when some user netdev has no dns-upstream= of its own
  const needResolvConf = config.netdevs.some((nd) => nd.type === "user" && nd.dnsUpstream.length === 0);
  const resolvConf = needResolvConf
    ? await readFile("/etc/resolv.conf", "utf8").catch(() => undefined)
    : undefined;

  let forwards: Forwards | undefined;
  try {
    for (const nd of config.netdevs) {
      const hub = hubs.get(nd.hub);
      switch (nd.type) {
        case "user": {
          const u = new UserNetdev(nd, log.child({ netdev: nd.id }), {
            stateDir: config.stateDir,
            resolvConf,
          });
          users.push(u);
          // start() loads the services only some configurations use: no frame before that
          await u.start();
          hub.attach(u);
          log.info(`hub ${nd.hub}: ${nd.id}: ${u.describe()}`);
          break;
        }
        default: {
          await prepareSocketDirectory(nd);
          const h = await openNetdev(nd, hub, log, {
            onTapFailure: (err) => options.onTapFailure?.(nd.id, err),
          });
          handles.push(h);
          log.info(`hub ${nd.hub}: ${nd.id}: ${h.describe()}`);
        }
      }
    }
    forwards = await Forwards.open(users, config.stateDir, log.child({ component: "forwards" }));
    if (config.slirp4netnsApiSocket !== undefined) {
      const { startSlirp4netnsApi } = await import("./api/slirp4netns-api.js");
      slirpApi = await startSlirp4netnsApi(config.slirp4netnsApiSocket, forwards, {
        log: log.child({ component: "slirp4netns-api" }),
        internalError: (where, err) => internalErrors.report(where, err),
      });
    }
  } catch (e) {
    await close();
    throw e;
  }

  const control = createControl({
    hubs,
    users,
    handles,
    log,
    version: options.version ?? "unknown",
    open: openNetdev,
    configuredHubs: new Map(config.netdevs.map((nd) => [nd.id, nd.hub])),
  });
  const usernet: Usernet = { ...control, forwards, close };
  if (config.api) {
    try {
      // fastify, prom-client and typebox load only with an API (about 20 MiB of RSS)
      const { startApi } = await import("./api/server.js");
      api = await startApi(config.api, usernet, log.child({ component: "api" }), {
        logLevel: config.logLevel,
        version: options.version,
      });
    } catch (e) {
      await close();
      throw e;
    }
  }
  // start-up (module loading, the API's schema compilers) leaves freed malloc chunks
  // resident; they go back a second from now, and after each burst of frames that
  // goes quiet (src/frame-gc.ts)
  setTrim(trimMemory);
  setTimeout(trimMemory, 1000).unref();
  return usernet;
}

/** A unix listener's directory (the default one lives under $XDG_RUNTIME_DIR) is created private to the user. */
async function prepareSocketDirectory(nd: NetdevConfig): Promise<void> {
  if (nd.type === "stream" && nd.server && nd.addr.type === "unix") {
    await mkdir(dirname(nd.addr.path), { recursive: true, mode: 0o700 });
  }
}
