import { describe, expect, it } from "vitest";
import { checkBindConflicts } from "../../../src/cli/binds.js";
import { portRequest } from "../../../src/cli/ctl-ports.js";
import { NetdevList } from "../../../src/cli/netdev.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { NetdevConfig } from "../../../src/config.js";

const ws = (opts: string): NetdevConfig => new NetdevList().add("-netdev", `websocket,id=w0,${opts}`);
const error = (opts: string): string => {
  try {
    ws(opts);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "no error";
};
const base = { type: "websocket", id: "w0", hub: 0, framing: "raw", origins: [] };

describe("-netdev websocket", () => {
  it.each<[string, Partial<NetdevConfig>]>([
    ["listen=127.0.0.1:8080", { listen: { host: "127.0.0.1", port: 8080 } }],
    ["listen=:8080", { listen: { host: "0.0.0.0", port: 8080 } }],
    ["listen=127.0.0.1:0", { listen: { host: "127.0.0.1", port: 0 } }],
    ["listen=127.0.0.1:8080,framing=qemu", { listen: { host: "127.0.0.1", port: 8080 }, framing: "qemu" }],
    ["listen=127.0.0.1:8080,path=/v86/net", { listen: { host: "127.0.0.1", port: 8080 }, path: "/v86/net" }],
    [
      "listen=127.0.0.1:8080,origin=http://localhost:8000,origin=https://vm.example:8443",
      {
        listen: { host: "127.0.0.1", port: 8080 },
        origins: ["http://localhost:8000", "https://vm.example:8443"],
      },
    ],
    ["listen=127.0.0.1:8080,origin=*", { listen: { host: "127.0.0.1", port: 8080 }, origins: ["*"] }],
    [
      "listen=127.0.0.1:8080,token-file=/run/t,cert=/c.pem,key=/k.pem",
      { listen: { host: "127.0.0.1", port: 8080 }, tokenFile: "/run/t", cert: "/c.pem", key: "/k.pem" },
    ],
  ])("%s", (opts, changes) => {
    expect(ws(opts)).toEqual({ ...base, ...changes });
  });

  it.each([
    ["", "-netdev websocket: listen=[HOST]:PORT is required, such as listen=127.0.0.1:8080"],
    ["listen=8080", "-netdev websocket: listen=8080: expected [HOST]:PORT such as listen=127.0.0.1:8080"],
    [
      "listen=:8080,framing=json",
      "-netdev websocket: framing=json: expected raw or qemu such as framing=raw",
    ],
    ["listen=:8080,path=net", "-netdev websocket: path=net: expected an absolute URL path such as path=/net"],
    [
      "listen=:8080,origin=localhost:8000",
      "-netdev websocket: origin=localhost:8000: expected SCHEME://HOST[:PORT] or * such as origin=http://localhost:8000",
    ],
    [
      "listen=:8080,origin=http://localhost:8000/page",
      "-netdev websocket: origin=http://localhost:8000/page: expected SCHEME://HOST[:PORT] or * such as origin=http://localhost:8000",
    ],
    ["listen=:8080,cert=/c.pem", "-netdev websocket: cert= and key= go together (both PEM files)"],
    [
      "listen=:8080,token-file=",
      "-netdev websocket: token-file=: expected a file holding the token such as token-file=/run/usernet/ws.token",
    ],
    [
      "connect=127.0.0.1:8080",
      "-netdev websocket: connect=127.0.0.1:8080: not supported: usernet is the WebSocket server; clients connect to listen=",
    ],
  ])("refuses %s", (opts, message) => {
    expect(error(opts)).toBe(message);
  });

  it("its TCP port conflicts with another listener's", () => {
    const list = new NetdevList();
    list.add("-netdev", "socket,id=s0,listen=127.0.0.1:8080");
    list.add("-netdev", "websocket,id=w0,listen=:8080");
    expect(() => checkBindConflicts(list.entries)).toThrow(
      "-netdev websocket,id=w0: tcp 0.0.0.0:8080 is already taken by -netdev socket,id=s0",
    );
  });

  it("ctl ports add: the -netdev value as the API's port request, files made absolute", () => {
    expect(portRequest("websocket,id=w1,listen=127.0.0.1:0,hubid=2,token-file=t,framing=qemu")).toEqual({
      hub: 2,
      body: {
        type: "websocket",
        id: "w1",
        listen: { host: "127.0.0.1", port: 0 },
        framing: "qemu",
        origins: [],
        tokenFile: `${process.cwd()}/t`,
      },
    });
    expect(portRequest("socket,id=s1,listen=127.0.0.1:8010")).toEqual({
      hub: 0,
      body: { type: "socket", id: "s1", mode: "listen", addr: { host: "127.0.0.1", port: 8010 } },
    });
    expect(() => portRequest("user,id=u1")).toThrow(/a user netdev cannot be added at run time/);
  });
});
