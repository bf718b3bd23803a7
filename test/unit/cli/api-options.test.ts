import { describe, expect, it } from "vitest";
import { defaultApiSocketPath } from "../../../src/cli/defaults.js";
import { parseCommandLine } from "../../../src/cli/parse.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { Config } from "../../../src/config.js";

const env = { XDG_RUNTIME_DIR: "/run/user/1000" };
const token = "0123456789abcdef0123";
const files = (p: string): string => {
  if (p === "/tok") return `${token}\nignored second line\n`;
  if (p === "/short") return "abc\n";
  throw new Error(`ENOENT: no such file or directory, open '${p}'`);
};
const run = (argv: string[]): Config => {
  const r = parseCommandLine(argv, env, files);
  if (r.action !== "run") throw new Error(`not run: ${r.action}`);
  return r.config;
};
const error = (argv: string[]): string => {
  try {
    parseCommandLine(argv, env, files);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "no error";
};
const user = ["-netdev", "user,id=n0"];

describe("management API options", () => {
  it("defaults to api.sock next to hub0.sock when usernet runs its defaults", () => {
    expect(run([]).api).toEqual({ socket: "/run/user/1000/usernet/api.sock" });
    expect(defaultApiSocketPath({ TMPDIR: "/scratch" }, 7)).toBe("/scratch/usernet-7/api.sock");
    expect(run(["--api", "off"]).api).toBeUndefined();
  });

  it("is off with explicit netdevs unless --api is given", () => {
    expect(run(user).api).toBeUndefined();
    expect(run([...user, "--api", "/tmp/a.sock"]).api).toEqual({ socket: "/tmp/a.sock" });
    expect(run([...user, "--api=/tmp/a.sock", "--api", "/tmp/b.sock"]).api).toEqual({
      socket: "/tmp/b.sock",
    });
  });

  it("--api-listen needs a token file of at least 16 characters", () => {
    expect(run([...user, "--api-listen", "127.0.0.1:8180", "--api-token-file", "/tok"]).api).toEqual({
      listen: { host: "127.0.0.1", port: 8180 },
      token,
    });
    expect(error([...user, "--api-listen", "127.0.0.1:8180"])).toMatch(/needs a token.*--api-token-file/);
    expect(error([...user, "--api-listen", "127.0.0.1:8180", "--api-token-file", "/short"])).toMatch(
      /at least 16 characters/,
    );
    expect(error([...user, "--api-listen", "127.0.0.1:8180", "--api-token-file", "/nope"])).toMatch(
      /--api-token-file \/nope: cannot read/,
    );
    expect(error([...user, "--api-token-file", "/tok"])).toMatch(/only useful with --api-listen/);
    expect(error([...user, "--api-listen", "localhost"])).toMatch(
      /--api-listen localhost: expected HOST:PORT/,
    );
    expect(error([...user, "--api-listen", "127.0.0.1:70000"])).toMatch(/expected HOST:PORT/);
  });

  it("--dashboard HOST:PORT, with the token file's token when there is one", () => {
    expect(run([...user, "--dashboard", "127.0.0.1:8188"]).api).toEqual({
      dashboard: { host: "127.0.0.1", port: 8188 },
    });
    expect(run([...user, "--dashboard", "127.0.0.1:8188", "--api-token-file", "/tok"]).api).toEqual({
      dashboard: { host: "127.0.0.1", port: 8188 },
      token,
    });
    expect(error([...user, "--dashboard", "8188"])).toMatch(/--dashboard 8188: expected HOST:PORT such as/);
  });

  it("refuses unusable socket paths", () => {
    expect(error([...user, "--api", ""])).toMatch(/--api : expected PATH/);
    expect(error([...user, "--api", `/${"x".repeat(120)}`])).toMatch(/at most 107 bytes/);
  });
});
