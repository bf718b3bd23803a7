/**
 * What a configuration reload (SIGHUP, `systemctl reload`) may change in a running
 * usernet, decided as data: `planReload(running, next)` compares the configuration
 * usernet runs with the one just re-read and says what to close, what to open, which
 * forwards to reconcile, and what cannot change live. The composition root
 * (usernet.ts) carries the plan out; nothing here does I/O.
 *
 * Live (no guest of an unchanged netdev notices):
 * - QEMU socket/stream/dgram netdevs: one the file no longer has is closed (its guests
 *   go with it, as the file says); a new one is opened; one whose options changed is
 *   closed and opened again. A netdev the file keeps as it was is not touched, nor are
 *   its connected guests, nor ports added through the API.
 * - hostfwd= of a user netdev: forwards the file dropped are closed, new ones bound;
 *   open ones and their connections stay (forwards.ts reconcileConfigured). Runtime
 *   forwards (API, ctl) are not the file's and stay.
 * Not live (logged, and left as they run until a restart): a user netdev added,
 * removed or changed in anything but hostfwd= (its stack, DHCP and NAT state belong
 * to guests now); TAP netdevs; the API, dashboard and slirp4netns API sockets;
 * --state-dir, --sandbox, --log-level.
 */
import type { Config, HostForward, NetdevConfig, UserNetdevConfig } from "./config.js";

export interface ReloadPlan {
  /** netdev ids to close */
  close: string[];
  /** port netdevs to open (socket, stream, dgram) */
  open: NetdevConfig[];
  /** every user netdev's forwards as the new file says */
  forwards: { netdev: string; rules: HostForward[] }[];
  /** the netdevs that run on unchanged (user netdevs with their new hostfwd=) */
  keep: NetdevConfig[];
  report: { notLive: string[] };
}

export interface ReloadReport {
  opened: string[];
  closed: string[];
  forwardsAdded: number[];
  forwardsRemoved: number[];
  /** what could not be done, one line each */
  failed: string[];
  /** the changes that need a restart, one line each */
  notLive: string[];
  /** the netdevs running after the reload */
  netdevs: NetdevConfig[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const withoutForwards = (u: UserNetdevConfig) => ({ ...u, hostfwd: [] });
const live = (nd: NetdevConfig) => nd.type === "socket" || nd.type === "stream" || nd.type === "dgram";

export function planReload(running: Config, next: Config): ReloadPlan {
  const plan: ReloadPlan = { close: [], open: [], forwards: [], keep: [], report: { notLive: [] } };
  const notLive = plan.report.notLive;
  const before = new Map(running.netdevs.map((nd) => [nd.id, nd]));
  const after = new Map(next.netdevs.map((nd) => [nd.id, nd]));

  for (const old of running.netdevs) {
    const now = after.get(old.id);
    if (old.type === "user") {
      if (now === undefined) {
        notLive.push(`user netdev ${old.id} is no longer in the configuration`);
        plan.keep.push(old);
      } else if (now.type !== "user" || !same(withoutForwards(old), withoutForwards(now))) {
        notLive.push(`user netdev ${old.id} changed (only hostfwd= changes live)`);
        plan.keep.push(old);
        if (now.type === "user") plan.forwards.push({ netdev: old.id, rules: now.hostfwd });
      } else {
        plan.keep.push(now);
        plan.forwards.push({ netdev: old.id, rules: now.hostfwd });
      }
      continue;
    }
    if (!live(old) || (now !== undefined && !live(now))) {
      if (!same(old, now)) notLive.push(`netdev ${old.id} (${old.type}) changed`);
      plan.keep.push(old);
      continue;
    }
    if (now === undefined) {
      plan.close.push(old.id);
    } else if (!same(old, now)) {
      plan.close.push(old.id);
      plan.open.push(now);
    } else {
      plan.keep.push(old);
    }
  }
  for (const nd of next.netdevs) {
    if (before.has(nd.id)) continue;
    if (live(nd)) plan.open.push(nd);
    else notLive.push(`${nd.type} netdev ${nd.id} is new`);
  }
  const global: [string, unknown, unknown][] = [
    ["the management API (--api, --api-listen, --api-token-file, --dashboard)", running.api, next.api],
    ["--api-socket", running.slirp4netnsApiSocket, next.slirp4netnsApiSocket],
    ["--state-dir", running.stateDir, next.stateDir],
    ["--sandbox", running.sandbox, next.sandbox],
    ["--log-level", running.logLevel, next.logLevel],
  ];
  for (const [what, a, b] of global) if (!same(a, b)) notLive.push(`${what} changed`);
  return plan;
}
