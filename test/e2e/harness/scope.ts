/**
 * Per-test resources with cleanup: call `e2eScope()` once inside a describeE2E body;
 * everything made through it (namespaces, usernet processes, guests, DNS servers) is closed after
 * each test in reverse order, and when a test fails the tails of usernet's and the
 * guests' output are printed so the failure explains itself. Every usernet started
 * through it must end without internal errors (bugs it caught and counted, see
 * harness/usernet.ts): the teardown fails the test otherwise.
 */
import { afterEach } from "vitest";
import { type DnsServerOptions, TestDnsServer } from "./dns-server.js";
import { Guest, type GuestOptions } from "./guest.js";
import { Netns, type NetnsOptions } from "./netns.js";
import type { Proc } from "./proc.js";
import { Usernet, type UsernetOptions } from "./usernet.js";

export interface E2eScope {
  netns(opts?: NetnsOptions): Promise<Netns>;
  usernet(ns: Netns, args: readonly string[], opts?: UsernetOptions): Promise<Usernet>;
  guest(ns: Netns, opts: GuestOptions): Promise<Guest>;
  /** the DNS server usernet's dns-upstream= points at (tests never reach a real resolver) */
  dns(ns: Netns, opts: DnsServerOptions): Promise<TestDnsServer>;
  /** runs `fn` in this test's cleanup (before the earlier-registered ones) */
  defer(fn: () => Promise<unknown> | unknown): void;
  /** a process whose output is worth printing on failure */
  watch(proc: Proc): void;
}

export function e2eScope(): E2eScope {
  let cleanups: (() => Promise<unknown> | unknown)[] = [];
  let watched: Proc[] = [];

  afterEach(async (ctx) => {
    const failed = ctx.task.result?.state === "fail";
    if (failed) {
      for (const p of watched) process.stderr.write(`\n${p.tail(4000)}\n`);
    }
    const todo = cleanups.reverse();
    cleanups = [];
    watched = [];
    const errors: unknown[] = [];
    for (const c of todo) {
      try {
        await c();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length > 0) throw errors[0];
  });

  const scope: E2eScope = {
    async netns(opts) {
      const ns = await Netns.create(opts);
      cleanups.push(() => ns.close());
      return ns;
    },
    async usernet(ns, args, opts) {
      const u = await Usernet.start(ns, args, opts);
      cleanups.push(async () => {
        await u.close();
        u.assertNoInternalErrors();
      });
      watched.push(u.proc);
      return u;
    },
    async guest(ns, opts) {
      const g = await Guest.start(ns, opts);
      cleanups.push(() => g.close());
      watched.push(g.proc);
      return g;
    },
    async dns(ns, opts) {
      const d = await TestDnsServer.start(ns, opts);
      cleanups.push(() => d.close());
      return d;
    },
    defer(fn) {
      cleanups.push(fn);
    },
    watch(proc) {
      watched.push(proc);
    },
  };
  return scope;
}
