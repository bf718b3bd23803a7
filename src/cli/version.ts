/**
 * The version printed by --version: package.json's, found by walking up from this
 * module, so it works from src/cli under vitest and from the compiled dist tree alike
 * (whatever depth the build puts it at). Six levels at most.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function readVersion(
  from: string = dirname(fileURLToPath(import.meta.url)),
  read: (path: string) => string = (p) => readFileSync(p, "utf8"),
): string {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    let text: string | undefined;
    try {
      text = read(join(dir, "package.json"));
    } catch {
      // not here; keep walking up
    }
    if (text !== undefined) {
      const pkg: unknown = JSON.parse(text);
      if (typeof pkg === "object" && pkg !== null && "name" in pkg && "version" in pkg) {
        if (pkg.name === "usernet" && typeof pkg.version === "string") return pkg.version;
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return "unknown";
}
