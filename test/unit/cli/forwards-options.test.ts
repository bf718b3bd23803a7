import { describe, expect, it } from "vitest";
import { parseCommandLine } from "../../../src/cli/parse.js";
import { usageText } from "../../../src/cli/usage.js";
import type { UserNetdevConfig } from "../../../src/config.js";

const run = (args: string[]) => {
  const r = parseCommandLine(args, {});
  if (r.action !== "run") throw new Error("expected a run");
  return r.config;
};
const user = (args: string[]) => run(args).netdevs.find((n) => n.type === "user") as UserNetdevConfig;

describe("runtime forward options", () => {
  it("--api-socket sets the slirp4netns API path; the last one wins", () => {
    expect(run(["-netdev", "user,id=u0", "--api-socket", "/tmp/a.sock"]).slirp4netnsApiSocket).toBe(
      "/tmp/a.sock",
    );
    expect(
      run(["--api-socket=/tmp/a", "-netdev", "user,id=u0", "--api-socket", "/tmp/b"]).slirp4netnsApiSocket,
    ).toBe("/tmp/b");
    expect(run(["-netdev", "user,id=u0"]).slirp4netnsApiSocket).toBeUndefined();
    expect(() => run(["-netdev", "user,id=u0", "--api-socket", `/tmp/${"x".repeat(120)}`])).toThrow(
      /--api-socket/,
    );
    expect(() => run(["-netdev", "user,id=u0", "--api-socket"])).toThrow(/--api-socket: missing value/);
  });

  it("hostfwd-source=preserve keeps clients' addresses for the netdev's forwards and -redir; gateway is QEMU's default", () => {
    expect(user(["-netdev", "user,id=u0,hostfwd=tcp::2222-:22"]).preserveSource).toBeUndefined();
    expect(user(["-netdev", "user,id=u0,hostfwd-source=gateway"]).preserveSource).toBeUndefined();
    const u = user([
      "-netdev",
      "user,id=u0,hostfwd-source=preserve,hostfwd=tcp::2222-:22",
      "-redir",
      "udp:5353::53",
    ]);
    expect(u.preserveSource).toBe(true);
    // rules do not say; the netdev's default applies to all of them, -redir included
    expect(u.hostfwd.map((f) => f.preserveSource)).toEqual([undefined, undefined]);
    expect(() => user(["-netdev", "user,id=u0,hostfwd-source=client"])).toThrow(
      /hostfwd-source.*preserve or gateway/,
    );
  });

  it("--help documents both", () => {
    expect(usageText).toMatch(/--api-socket PATH/);
    expect(usageText).toMatch(/hostfwd-source=preserve\|gateway/);
  });
});
