/**
 * The layering of DESIGN.md, checked rather than remembered: every relative and
 * node: import in src/ (type imports, re-exports and import() included) is read and
 * held against the rules below, and the import graph must have no circle.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const src = join(root, "src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

interface Import {
  from: string;
  /** path relative to src/ for project files, the specifier for packages */
  to: string;
  /** `import type` / `export type`, or every name marked `type` */
  typeOnly: boolean;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, "utf8");
  const out: Import[] = [];
  const from = relative(src, file);
  for (const m of text.matchAll(
    /(?:^|\n)\s*(import|export)(\s[^'";]*?)from\s+["']([^"']+)["']|(?:^|\n)\s*import\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g,
  )) {
    const spec = m[3] ?? m[4] ?? m[5] ?? "";
    const clause = (m[2] ?? "").trim();
    const names = /^\{([^}]*)\}$/.exec(clause)?.[1];
    const typeOnly =
      clause.startsWith("type ") ||
      names
        ?.split(",")
        .map((n) => n.trim())
        .filter((n) => n !== "")
        .every((n) => n.startsWith("type "));
    out.push({
      from,
      to: spec.startsWith(".") ? relative(src, resolve(dirname(file), spec)).replace(/\.js$/, ".ts") : spec,
      typeOnly: typeOnly === true,
    });
  }
  return out;
}

/**
 * The circles of a directed graph: its strongly connected components of more than
 * one node, or of one node that imports itself (Tarjan's algorithm).
 */
function circles(edges: readonly { from: string; to: string }[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
    if (!next.has(e.to)) next.set(e.to, []);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let counter = 0;
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string | undefined;
    do {
      w = stack.pop();
      if (w === undefined) break;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (next.get(v) ?? []).includes(v)) out.push(scc.sort());
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return out;
}

const all = sources(src).flatMap(importsOf);
const local = all.filter((i) => i.to.endsWith(".ts"));
const within = (dir: string) => (p: string) => p.startsWith(`${dir}/`);
const nodeIo = /^node:(net|dgram|fs|fs\/promises|child_process|http|https|tls)$/;

describe("module boundaries (DESIGN.md)", () => {
  it("found the sources", () => {
    expect(all.length).toBeGreaterThan(20);
  });

  it("wire/ imports nothing but wire/", () => {
    const bad = all.filter((i) => within("stack/wire")(i.from) && !within("stack/wire")(i.to));
    expect(bad).toEqual([]);
  });

  it("stack/ imports only stack/ and never node I/O", () => {
    const bad = all.filter(
      (i) =>
        within("stack")(i.from) &&
        (nodeIo.test(i.to) || (!i.to.startsWith("node:") && !within("stack")(i.to))),
    );
    expect(bad).toEqual([]);
  });

  it("hub/ imports nothing of ports/, and only ports/, proxy/ and api/ (its own listeners) open sockets", () => {
    expect(all.filter((i) => within("hub")(i.from) && within("ports")(i.to))).toEqual([]);
    const sockets = all.filter((i) => /^node:(net|dgram)$/.test(i.to));
    expect(
      sockets.filter((i) => !within("ports")(i.from) && !within("proxy")(i.from) && !within("api")(i.from)),
    ).toEqual([]);
  });

  it("api/ imports only its own files (what it needs of the service is declared in api/service.ts) and two shared leaves", () => {
    // the one forward-rule check every entry point shares, and the stale-socket check
    // every unix listener shares: neither imports anything above the wire codecs
    const leaves = ["forward-rule.ts", "ports/unix-socket.ts"];
    expect(
      local.filter((i) => within("api")(i.from) && !within("api")(i.to) && !leaves.includes(i.to)),
    ).toEqual([]);
  });

  it("only the composition roots (usernet.ts, and cli/ commands that start a service) import api/", () => {
    expect(
      local.filter(
        (i) =>
          within("api")(i.to) && !within("api")(i.from) && i.from !== "usernet.ts" && !within("cli")(i.from),
      ),
    ).toEqual([]);
  });

  it("the composition root opens every port netdev through ports/netdev.ts", () => {
    expect(
      local.filter((i) => i.from === "usernet.ts" && within("ports")(i.to) && i.to !== "ports/netdev.ts"),
    ).toEqual([]);
  });

  it("the routing table is sans-I/O data, and the timer driver owns the only user-netdev timer", () => {
    expect(
      all.filter(
        (i) => i.from === "stack/routes.ts" && !["stack/config.ts", "stack/wire/ipv6-addr.ts"].includes(i.to),
      ),
    ).toEqual([]);
    expect(all.filter((i) => i.from === "timer-driver.ts" && i.to !== "stack/clock.ts")).toEqual([]);
    // one user of each: the user netdev that composes them (control.ts reads the snapshot's types)
    for (const m of ["stack/routes.ts", "timer-driver.ts", "user-snapshot.ts"]) {
      expect(local.filter((i) => i.to === m && !i.typeOnly).map((i) => i.from)).toEqual(["user-netdev.ts"]);
    }
    expect(readFileSync(join(src, "user-netdev.ts"), "utf8")).not.toMatch(/\bsetTimeout\(/);
  });

  it("control.ts and forwards.ts read user netdevs through snapshot() and narrow views, not their parts", () => {
    const bad = local.filter(
      (i) =>
        ["control.ts", "forwards.ts"].includes(i.from) &&
        (/^(services|proxy)\//.test(i.to) ||
          (within("stack")(i.to) && !/^stack\/(clock|wire\/addr|wire\/ipv6-addr)\.ts$/.test(i.to))),
    );
    expect(bad.filter((i) => !(i.from === "forwards.ts" && i.to === "proxy/forward-store.ts"))).toEqual([]);
    // the user netdev's class is built by the composition root alone
    expect(local.filter((i) => i.to === "user-netdev.ts" && !i.typeOnly && i.from !== "usernet.ts")).toEqual(
      [],
    );
  });

  it("no circle anywhere in src/, type imports included", () => {
    expect(circles(local)).toEqual([]);
  });

  it("the circle check finds circles", () => {
    expect(
      circles([
        { from: "a", to: "b" },
        { from: "b", to: "c" },
        { from: "c", to: "a" },
        { from: "c", to: "d" },
        { from: "e", to: "e" },
      ]),
    ).toEqual([["a", "b", "c"], ["e"]]);
    expect(circles([{ from: "a", to: "b" }])).toEqual([]);
  });

  it("services/ use the stack's wire codecs at most, never hub/ports/proxy", () => {
    const bad = all.filter((i) => within("services")(i.from) && /^(hub|ports|proxy|cli|api)\//.test(i.to));
    expect(bad).toEqual([]);
  });

  it("nothing imports cli/ from outside it", () => {
    expect(all.filter((i) => within("cli")(i.to) && !within("cli")(i.from))).toEqual([]);
  });
});
