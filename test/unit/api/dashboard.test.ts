/**
 * The dashboard's server side: the page behind its token (from the URL), with its
 * assets inlined under a nonce CSP; the event stream (log tail, states when they
 * change, log lines as written); a dashboard listener with a random token in its URL.
 */
import { get } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { buildApi, startApi } from "../../../src/api/server.js";
import { silentLogger } from "../../../src/log.js";
import { LogTail } from "../../../src/log-tail.js";
import { fakeWorld } from "./fake-facade.js";

const token = "a-token-of-some-length";
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** reads a streaming response until `until` matches what arrived (or 5 s pass) */
function readStream(
  url: string,
  headers: Record<string, string>,
  until: RegExp,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers }, (res) => {
      let text = "";
      const timer = setTimeout(() => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, text });
      }, 5000);
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
        if (until.test(text)) {
          clearTimeout(timer);
          req.destroy();
          resolve({ status: res.statusCode ?? 0, text });
        }
      });
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text });
      });
    });
    req.on("error", reject);
  });
}

describe("the dashboard page", () => {
  it("needs the token in its URL and inlines its script and style under a nonce", async () => {
    const world = fakeWorld();
    const app = await buildApi(world.facade, { token, dashboardPage: true });
    closers.push(() => app.close());
    const bare = await app.inject({ method: "GET", url: "/" });
    expect(bare.statusCode).toBe(401);
    expect(bare.body).toMatch(/open the URL with \?token=/);
    expect((await app.inject({ method: "GET", url: "/?token=wrong-token-entirely" })).statusCode).toBe(401);
    // the token in a URL opens the page only, not the API
    expect((await app.inject({ method: "GET", url: `/v1/status?token=${token}` })).statusCode).toBe(401);

    const page = await app.inject({ method: "GET", url: `/?token=${token}` });
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    const nonce = /script-src 'nonce-([^']+)'/.exec(String(page.headers["content-security-policy"]))?.[1];
    expect(nonce).toBeDefined();
    expect(page.body).toContain(`<script nonce="${nonce}">`);
    expect(page.body).toContain('fetch("/v1/events"');
    expect(page.body).not.toContain("/*SCRIPT*/");
    expect(page.body).not.toMatch(/https?:\/\//);
  });

  it("is not served where it was not asked for (the unix socket API)", async () => {
    const app = await buildApi(fakeWorld().facade, {});
    closers.push(() => app.close());
    expect((await app.inject({ method: "GET", url: "/" })).statusCode).toBe(404);
  });
});

describe("GET /v1/events", () => {
  it("streams the log tail, a state, then log lines as they are written", async () => {
    const world = fakeWorld();
    const tail = new LogTail();
    tail.push("usernet info: before\n");
    const app = await buildApi(world.facade, { token, logTail: tail });
    closers.push(() => app.close());
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const url = `http://127.0.0.1:${port}/v1/events?interval=250`;

    expect((await readStream(url, {}, /./)).status).toBe(401);
    setTimeout(() => tail.push("usernet info: after\n"), 300);
    const r = await readStream(
      url,
      { authorization: `Bearer ${token}` },
      /event: log\ndata: "usernet info: after"/,
    );
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/^event: log-tail\ndata: \["usernet info: before"\]\n\n/);
    const state = /event: state\ndata: (.*)\n/.exec(r.text)?.[1];
    const parsed = JSON.parse(state ?? "{}");
    expect(parsed.status.version).toBe(world.facade.status().version);
    expect(Object.keys(parsed).sort()).toEqual(["at", "flows", "forwards", "leases", "status"]);
    expect(r.text).toContain('event: log\ndata: "usernet info: after"');
  });

  it("ends when the server closes", async () => {
    const app = await buildApi(fakeWorld().facade, {});
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const reading = readStream(`http://127.0.0.1:${port}/v1/events`, {}, /never/);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await app.close();
    await reading;
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe("--dashboard", () => {
  it("listens with a random token printed in its URL, or the API's token", async () => {
    const world = fakeWorld();
    const api = await startApi({ dashboard: { host: "127.0.0.1", port: 0 } }, world.facade, silentLogger);
    closers.push(() => api.close());
    expect(api.dashboardUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/);
    const url = new URL(api.dashboardUrl ?? "");
    const ok = await readStream(
      `${url.origin}/v1/status`,
      { authorization: `Bearer ${url.searchParams.get("token")}` },
      /\}$/,
    );
    expect(ok.status).toBe(200);
    expect((await readStream(`${url.origin}/v1/status`, {}, /\}$/)).status).toBe(401);

    const other = await startApi(
      { dashboard: { host: "127.0.0.1", port: 0 }, token },
      world.facade,
      silentLogger,
    );
    closers.push(() => other.close());
    expect(other.dashboardUrl).toMatch(new RegExp(`\\?token=${token}$`));
  });
});
