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
import type { LogTailSource } from "./log-tail.js";
import { type NativeError, trimMemory } from "./native/binding.js";
import { type NetdevHandle, openNetdev, type PortNetdevConfig } from "./ports/netdev.js";
import { planReload, type ReloadReport } from "./reload.js";
import type { ActivatedSockets } from "./systemd/activation.js";
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
  /** the dashboard's address with its token (http://HOST:PORT/?token=...), when one runs */
  readonly dashboardUrl?: string;
  /**
   * Applies a re-read configuration (SIGHUP) without dropping guests: port netdevs and
   * configured forwards as `next` says; what cannot change live is listed, not applied.
   */
  reload(next: Config): Promise<ReloadReport>;
  close(): Promise<void>;
}

export interface UsernetOptions {
  /** a TAP port's device stopped working (e.g. its namespace is gone); default: logged only */
  onTapFailure?: (netdevId: string, err: NativeError) => void;
  /** shown by the API's status and metrics */
  version?: string;
  /** listening sockets from systemd (socket activation), by name: netdev ids, "api", "dashboard" */
  activated?: ActivatedSockets;
  /** the log's last lines, for the dashboard */
  logTail?: LogTailSource;
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
          const listenFd = takeActivated(nd, options.activated);
          if (listenFd === undefined) await prepareSocketDirectory(nd);
          const h = await openNetdev(nd, hub, log, {
            onTapFailure: (err) => options.onTapFailure?.(nd.id, err),
            listenFd,
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
  let current = config;
  let reloading = Promise.resolve();
  const reload = (next: Config): Promise<ReloadReport> => {
    const run = reloading.then(async () => {
      const report = await applyReload(current, next, control, forwards as Forwards, log);
      current = { ...current, netdevs: report.netdevs };
      return report;
    });
    reloading = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };
  const usernet: Usernet = { ...control, forwards, close, reload };
  if (config.api) {
    try {
      // fastify, prom-client and typebox load only with an API (about 20 MiB of RSS)
      const { startApi } = await import("./api/server.js");
      const activated = options.activated;
      api = await startApi(
        {
          ...config.api,
          fds: activated?.take("api") ?? [],
          dashboardFds: activated?.take("dashboard") ?? [],
        },
        usernet,
        log.child({ component: "api" }),
        { logLevel: config.logLevel, version: options.version, logTail: options.logTail },
      );
      if (api.dashboardUrl) (usernet as { dashboardUrl?: string }).dashboardUrl = api.dashboardUrl;
    } catch (e) {
      await close();
      throw e;
    }
  }
  const unused = options.activated?.unused() ?? [];
  if (unused.length > 0) {
    await close();
    throw new Error(
      `socket activation: no listener takes the socket(s) ${unused.map((u) => `${u.name} (fd ${u.fd})`).join(", ")}; ` +
        "name each after a listening netdev's id, or api, or dashboard (FileDescriptorName=)",
    );
  }
  // start-up (module loading, the API's schema compilers) leaves freed malloc chunks
  // resident; they go back a second from now, and after each burst of frames that
  // goes quiet (src/frame-gc.ts)
  setTrim(trimMemory);
  setTimeout(trimMemory, 1000).unref();
  return usernet;
}

/**
 * The inherited socket named after a netdev (socket activation), when there is one;
 * throws for a netdev that does not listen on a stream socket.
 */
function takeActivated(nd: NetdevConfig, activated: ActivatedSockets | undefined): number | undefined {
  if (!activated?.has(nd.id)) return undefined;
  const listens = (nd.type === "socket" && nd.mode === "listen") || (nd.type === "stream" && nd.server);
  if (!listens) {
    throw new Error(
      `socket activation: ${nd.id} is not a listener (socket,listen= or stream,server=on); it cannot take a socket`,
    );
  }
  const [fd, ...more] = activated.take(nd.id);
  if (more.length > 0) throw new Error(`socket activation: more than one socket is named ${nd.id}`);
  return fd;
}

/** Applies the port and forward changes of a reload; see src/reload.ts for what can change. */
async function applyReload(
  current: Config,
  next: Config,
  control: Control,
  forwards: Forwards,
  log: Logger,
): Promise<ReloadReport> {
  const plan = planReload(current, next);
  const report: ReloadReport = {
    opened: [],
    closed: [],
    forwardsAdded: [],
    forwardsRemoved: [],
    failed: [],
    notLive: plan.report.notLive,
    netdevs: [...plan.keep],
  };
  for (const why of plan.report.notLive) log.warn(`reload: ${why}; restart usernet to apply it`);
  for (const id of plan.close) {
    try {
      await control.closePort(id, "the config file");
      report.closed.push(id);
    } catch (e) {
      report.failed.push(`${id}: ${e instanceof Error ? e.message : e}`);
    }
  }
  for (const nd of plan.open) {
    try {
      await prepareSocketDirectory(nd);
      await control.openPort(nd.hub, nd as PortNetdevConfig, "the config file");
      report.opened.push(nd.id);
      report.netdevs.push(nd);
    } catch (e) {
      report.failed.push(`${nd.id}: ${e instanceof Error ? e.message : e}`);
      log.error(`reload: ${nd.id}: ${e instanceof Error ? e.message : e}`);
    }
  }
  for (const { netdev, rules } of plan.forwards) {
    const r = await forwards.reconcileConfigured(netdev, rules);
    for (const f of r.removed) report.forwardsRemoved.push(f.id);
    for (const f of r.added) {
      if (f.error === undefined) report.forwardsAdded.push(f.id);
      else report.failed.push(`forward ${f.id}: ${f.error}`);
    }
  }
  log.info(
    `reload: ${report.opened.length} netdev(s) opened, ${report.closed.length} closed, ` +
      `${report.forwardsAdded.length} forward(s) added, ${report.forwardsRemoved.length} removed` +
      (report.failed.length > 0 ? `, ${report.failed.length} failed` : "") +
      (report.notLive.length > 0 ? `, ${report.notLive.length} change(s) need a restart` : ""),
  );
  return report;
}

/** A unix listener's directory (the default one lives under $XDG_RUNTIME_DIR) is created private to the user. */
async function prepareSocketDirectory(nd: NetdevConfig): Promise<void> {
  if (nd.type === "stream" && nd.server && nd.addr.type === "unix") {
    await mkdir(dirname(nd.addr.path), { recursive: true, mode: 0o700 });
  }
}
