/**
 * The layering of DESIGN.md, checked rather than remembered: every relative and
 * node: import in src/ is read and held against the rules below.
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
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, "utf8");
  const out: Import[] = [];
  const from = relative(src, file);
  for (const m of text.matchAll(
    /(?:import|export)\s[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g,
  )) {
    const spec = m[1] ?? m[2] ?? "";
    out.push({
      from,
      to: spec.startsWith(".") ? relative(src, resolve(dirname(file), spec)).replace(/\.js$/, ".ts") : spec,
    });
  }
  return out;
}

const all = sources(src).flatMap(importsOf);
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

  it("api/ talks to the service only through the facade in usernet.ts (plus the shared forward-rule check and stale-socket helper)", () => {
    const bad = all.filter(
      (i) =>
        within("api")(i.from) &&
        !i.to.startsWith("node:") &&
        !/^[@a-z]/.test(i.to) &&
        !within("api")(i.to) &&
        !["usernet.ts", "log.ts", "forward-rule.ts", "ports/unix-socket.ts"].includes(i.to),
    );
    expect(bad).toEqual([]);
  });

  it("services/ use the stack's wire codecs at most, never hub/ports/proxy", () => {
    const bad = all.filter((i) => within("services")(i.from) && /^(hub|ports|proxy|cli|api)\//.test(i.to));
    expect(bad).toEqual([]);
  });

  it("nothing imports cli/ from outside it", () => {
    expect(all.filter((i) => within("cli")(i.to) && !within("cli")(i.from))).toEqual([]);
  });
});
