import { describe, expect, it } from "vitest";
import { fastifyLogger } from "../../../src/api/fastify-log.js";
import { createLogger } from "../../../src/log.js";

describe("fastifyLogger", () => {
  it("takes pino's call forms into the logger, requests and errors as short fields", () => {
    const out: string[] = [];
    const log = createLogger("debug", { write: (s: string) => out.push(s) }, {}, "json", () => new Date(0));
    const f = fastifyLogger(log, "debug").child({ reqId: "req-1" });
    f.info("plain");
    f.info({ req: { method: "GET", url: "/status", headers: {} } }, "incoming request");
    f.info({ res: { statusCode: 404 }, responseTime: 1.5 }, "request completed");
    f.error({ err: new Error("boom") }, "handler failed");
    f.fatal(new Error("fatal one"));
    f.trace({ msg: "from the object" });
    const lines = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ["info", "plain"],
      ["info", "incoming request"],
      ["info", "request completed"],
      ["error", "handler failed"],
      ["error", "fatal one"],
      ["debug", "from the object"],
    ]);
    expect(lines[1]).toMatchObject({ reqId: "req-1", req: "GET /status" });
    expect(lines[2]).toMatchObject({ status: 404, responseTime: 1.5 });
    expect(lines[3]).toMatchObject({ err: "boom" });
    expect(lines[4]).toMatchObject({ err: "fatal one" });
  });
});
