/**
 * The composition root: builds hubs, ports and user stacks from one Config, and the
 * control facade the CLI (and later the API) uses. Nothing else wires modules together.
 */
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Config, NetdevConfig } from "./config.js";
import { HubRegistry } from "./hub/hub.js";
import type { Logger } from "./log.js";
import { type NetdevHandle, openNetdev } from "./ports/netdev.js";
import { UserNetdev } from "./user-netdev.js";

export interface Usernet {
  readonly hubs: HubRegistry;
  readonly userNetdevs: readonly UserNetdev[];
  readonly portNetdevs: readonly NetdevHandle[];
  close(): Promise<void>;
}

export async function startUsernet(config: Config, log: Logger): Promise<Usernet> {
  const hubs = new HubRegistry({ log });
  const users: UserNetdev[] = [];
  const handles: NetdevHandle[] = [];

  const close = async () => {
    await Promise.allSettled(handles.map((h) => h.close()));
    for (const u of users) {
      hubs.find(u.config.hub)?.detach(u);
      u.close();
    }
    hubs.close();
  };

  // read once, only when some user netdev has no dns-upstream= of its own
  const needResolvConf = config.netdevs.some((nd) => nd.type === "user" && nd.dnsUpstream.length === 0);
  const resolvConf = needResolvConf
    ? await readFile("/etc/resolv.conf", "utf8").catch(() => undefined)
    : undefined;

  try {
    for (const nd of config.netdevs) {
      const hub = hubs.get(nd.hub);
      switch (nd.type) {
        case "user": {
          const u = new UserNetdev(nd, log.child({ netdev: nd.id }), {
            stateDir: config.stateDir,
            resolvConf,
          });
          hub.attach(u);
          users.push(u);
          await u.start();
          log.info(`hub ${nd.hub}: ${nd.id}: ${u.describe()}`);
          break;
        }
        case "tap":
          throw new Error(`-netdev tap,id=${nd.id}: TAP ports are not supported yet`);
        default: {
          await prepareSocketDirectory(nd);
          const h = await openNetdev(nd, hub, log);
          handles.push(h);
          log.info(`hub ${nd.hub}: ${nd.id}: ${h.describe()}`);
        }
      }
    }
  } catch (e) {
    await close();
    throw e;
  }

  return { hubs, userNetdevs: users, portNetdevs: handles, close };
}

/** A unix listener's directory (the default one lives under $XDG_RUNTIME_DIR) is created private to the user. */
async function prepareSocketDirectory(nd: NetdevConfig): Promise<void> {
  if (nd.type === "stream" && nd.server && nd.addr.type === "unix") {
    await mkdir(dirname(nd.addr.path), { recursive: true, mode: 0o700 });
  }
}
