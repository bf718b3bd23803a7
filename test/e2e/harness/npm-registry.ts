/**
 * A throwaway npm registry on loopback for the package test: `npm install` of usernet's
 * tarball gets its dependencies from here, so it runs with no network but 127.0.0.1.
 *
 * It serves the production dependencies already installed in the checkout's
 * node_modules (node_modules/.package-lock.json, npm's hidden lockfile, says which: every
 * package not marked dev), one packument per name (every installed version) and one
 * tarball per version, made with tar from the installed directory (without its own
 * node_modules). Integrity is sha512 of that tarball. Nothing else is known: a
 * dependency missing from node_modules gets a 404, and the install fails, as it should.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Netns } from "./netns.js";
import type { Proc } from "./proc.js";

interface LockEntry {
  version?: string;
  dev?: boolean;
  link?: boolean;
}

/** Writes OUT/packuments/<name>.json and OUT/tarballs/*.tgz for `repo`'s production dependencies. */
export function buildRegistryFiles(repo: string, out: string, url: string): number {
  const lock = JSON.parse(readFileSync(join(repo, "node_modules/.package-lock.json"), "utf8")) as {
    packages: Record<string, LockEntry>;
  };
  mkdirSync(join(out, "tarballs"), { recursive: true });
  mkdirSync(join(out, "packuments"), { recursive: true });
  const packuments = new Map<
    string,
    { name: string; "dist-tags": { latest: string }; versions: Record<string, unknown> }
  >();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "" || entry.dev || entry.link || !entry.version) continue;
    const dir = join(repo, path);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      name: string;
      version: string;
    };
    const file = `${pkg.name.replace("/", "__")}-${pkg.version}.tgz`;
    const tgz = join(out, "tarballs", file);
    const tar = spawnSync(
      "tar",
      ["-czf", tgz, "--exclude=./node_modules", "--transform", "s,^\\.,package,", "-C", dir, "."],
      { encoding: "utf8" },
    );
    if (tar.status !== 0) throw new Error(`tar of ${dir} failed: ${tar.stderr}`);
    const integrity = `sha512-${createHash("sha512").update(readFileSync(tgz)).digest("base64")}`;
    const p = packuments.get(pkg.name) ?? {
      name: pkg.name,
      "dist-tags": { latest: pkg.version },
      versions: {},
    };
    p.versions[pkg.version] = { ...pkg, dist: { tarball: `${url}/-/tarballs/${file}`, integrity } };
    packuments.set(pkg.name, p);
  }
  for (const [name, p] of packuments)
    writeFileSync(join(out, "packuments", `${encodeURIComponent(name)}.json`), JSON.stringify(p));
  return packuments.size;
}

const serverScript = `
const http = require("node:http"), fs = require("node:fs"), path = require("node:path");
const [dir, port] = [process.argv[1], Number(process.argv[2])];
http.createServer((q, s) => {
  const u = decodeURIComponent(q.url.split("?")[0]);
  const file = u.startsWith("/-/tarballs/")
    ? path.join(dir, "tarballs", path.basename(u))
    : path.join(dir, "packuments", encodeURIComponent(u.slice(1)) + ".json");
  fs.readFile(file, (err, body) => {
    console.log((err ? "404 " : "200 ") + u);
    if (err) { s.statusCode = 404; s.end("{}"); return; }
    s.setHeader("content-type", file.endsWith(".json") ? "application/json" : "application/octet-stream");
    s.end(body);
  });
}).listen(port, "127.0.0.1", () => console.log("REGISTRY-READY"));
`;

/** Serves `dir` (buildRegistryFiles' output) on 127.0.0.1:`port` inside `ns`; every request is a line on stdout. */
export async function startRegistry(ns: Netns, dir: string, port: number): Promise<Proc> {
  const proc = ns.spawn("npm-registry", process.execPath, ["-e", serverScript, dir, String(port)]);
  await proc.until("the registry", 10_000, () => (proc.stdout.includes("REGISTRY-READY") ? true : undefined));
  return proc;
}
