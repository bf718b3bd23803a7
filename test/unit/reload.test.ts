import { describe, expect, it } from "vitest";
import { parseCommandLine } from "../../src/cli/parse.js";
import type { Config } from "../../src/config.js";
import { planReload } from "../../src/reload.js";

const parse = (...argv: string[]): Config => {
  const r = parseCommandLine(argv, {}, () => "", 1000);
  if (r.action !== "run") throw new Error("not a run");
  return r.config;
};

const user = "user,id=u0,dns-upstream=127.0.0.1:5353";
const s0 = "stream,id=s0,server=on,addr.type=unix,addr.path=/tmp/x/hub.sock";

describe("planReload", () => {
  it("keeps what did not change and touches nothing", () => {
    const a = parse("-netdev", user, "-netdev", s0);
    const p = planReload(a, a);
    expect(p.close).toEqual([]);
    expect(p.open).toEqual([]);
    expect(p.report.notLive).toEqual([]);
    expect(p.keep.map((n) => n.id)).toEqual(["u0", "s0"]);
    expect(p.forwards).toEqual([{ netdev: "u0", rules: [] }]);
  });

  it("opens new listeners, closes dropped ones, reopens changed ones", () => {
    const a = parse("-netdev", user, "-netdev", s0, "-netdev", "socket,id=l1,listen=127.0.0.1:9001");
    const b = parse(
      "-netdev",
      user,
      "-netdev",
      "socket,id=l1,listen=127.0.0.1:9002",
      "-netdev",
      "socket,id=c2,connect=127.0.0.1:9003",
    );
    const p = planReload(a, b);
    expect(p.close).toEqual(["s0", "l1"]);
    expect(p.open.map((n) => n.id)).toEqual(["l1", "c2"]);
    expect(p.keep.map((n) => n.id)).toEqual(["u0"]);
  });

  it("hands a user netdev's new hostfwd= over, and logs other changes to it as needing a restart", () => {
    const a = parse("-netdev", `${user},hostfwd=tcp:127.0.0.1:2222-:22`);
    const b = parse("-netdev", `${user},hostfwd=tcp:127.0.0.1:2223-:22`);
    const p = planReload(a, b);
    expect(p.report.notLive).toEqual([]);
    expect(p.forwards[0]?.rules.map((r) => r.hostPort)).toEqual([2223]);

    const c = parse("-netdev", `${user},net=10.9.0.0/24,hostfwd=tcp:127.0.0.1:2223-:22`);
    const q = planReload(a, c);
    expect(q.report.notLive).toEqual(["user netdev u0 changed (only hostfwd= changes live)"]);
    expect(q.keep[0]).toBe(a.netdevs[0]);
    expect(q.forwards[0]?.rules.map((r) => r.hostPort)).toEqual([2223]);
  });

  it("lists user netdevs added or removed and global options as not live", () => {
    const a = parse("-netdev", user, "--state-dir", "/tmp/a");
    const b = parse(
      "-netdev",
      user,
      "-netdev",
      "user,id=u1,hubid=1",
      "--state-dir",
      "/tmp/b",
      "--log-level",
      "debug",
    );
    expect(planReload(a, b).report.notLive).toEqual([
      "user netdev u1 is new",
      "--state-dir changed",
      "--log-level changed",
    ]);
    expect(planReload(b, a).report.notLive).toContain("user netdev u1 is no longer in the configuration");
  });
});
