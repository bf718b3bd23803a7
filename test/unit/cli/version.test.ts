import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { readVersion } from "../../../src/cli/version.js";

describe("readVersion", () => {
  it("finds usernet's package.json from the module", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
    expect(readVersion()).toBe(pkg.version);
  });

  it("walks up past other packages, as from dist/cli or dist/src/cli", () => {
    const tree: Record<string, string> = {
      "/app/package.json": JSON.stringify({ name: "usernet", version: "9.8.7" }),
      "/app/dist/package.json": JSON.stringify({ type: "module" }),
    };
    const read = (p: string) => {
      const t = tree[p];
      if (t === undefined) throw new Error("ENOENT");
      return t;
    };
    expect(readVersion("/app/dist/cli", read)).toBe("9.8.7");
    expect(readVersion("/app/dist/src/cli", read)).toBe("9.8.7");
    expect(readVersion("/elsewhere/x", read)).toBe("unknown");
  });
});
