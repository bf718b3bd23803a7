import { mkdtempSync, rmSync, statSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildApi, startApi } from "../../../src/api/server.js";
import { createLogger, hostFaults, internalErrors, silentLogger } from "../../../src/log.js";
import { readPcap } from "../../../src/ports/pcap.js";
import { type FakeWorld, fakeWorld } from "./fake-facade.js";

let world: FakeWorld;
let app: FastifyInstance;

beforeEach(async () => {
  world = fakeWorld();
  app = await buildApi(world.facade, { version: "9.9.9" });
});
afterEach(async () => {
  await app.close();
});

const json = (method: "POST" | "PUT", url: string, body: unknown) =>
  app.inject({ method, url, payload: JSON.stringify(body), headers: { "content-type": "application/json" } });

function expectError(res: { statusCode: number; json(): unknown }, status: number, reason: string) {
  expect(res.statusCode).toBe(status);
  const body = res.json() as { error: { reason: string; message: string } };
  expect(body.error.reason).toBe(reason);
  expect(body.error.message.length).toBeGreaterThan(0);
}

describe("a route that throws", () => {
  it("answers 500 and counts an internal error", async () => {
    world.facade.hubList = () => {
      throw new TypeError("a bug in a route");
    };
    internalErrors.setLogger(silentLogger);
    const before = internalErrors.total;
    expectError(await app.inject({ method: "GET", url: "/v1/hubs" }), 500, "internal-error");
    expect(internalErrors.total - before).toBe(1);
  });
});

describe("read-only routes", () => {
  it("GET /v1/status: version, uptime, hubs, netdevs, ports with counters", async () => {
    world.ports[0]?.emit([Buffer.alloc(60, 1)]);
    const res = await app.inject({ method: "GET", url: "/v1/status" });
    expect(res.statusCode).toBe(200);
    const s = res.json();
    expect(s.version).toBe("9.9.9");
    expect(s.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(s.internalErrors).toBe(internalErrors.total);
    expect(s.hostFaults).toEqual(hostFaults.list());
    expect(s.hubs.map((h: { id: number }) => h.id)).toEqual([0, 3]);
    expect(s.netdevs).toEqual([
      expect.objectContaining({ id: "s0", kind: "stream-listen", hub: 0, ports: ["b"] }),
    ]);
    const a = s.ports.find((p: { name: string }) => p.name === "a");
    expect(a).toMatchObject({ hub: 0, kind: "scripted", netdev: "", stats: { rxFrames: 1, rxBytes: 60 } });
    const b = s.ports.find((p: { name: string }) => p.name === "b");
    expect(b).toMatchObject({ netdev: "s0", stats: { txFrames: 1, drops: { "tx-queue-full": 2 } } });
  });

  it("GET /v1/hubs and /v1/hubs/:id/ports", async () => {
    const hubs = (await app.inject({ method: "GET", url: "/v1/hubs" })).json();
    expect(hubs).toEqual([
      expect.objectContaining({ id: 0, ports: ["a", "b"] }),
      expect.objectContaining({ id: 3, ports: ["c"] }),
    ]);
    expect(hubs[0].stats).toMatchObject({ id: 0, ports: 2 });
    const ports = (await app.inject({ method: "GET", url: "/v1/hubs/3/ports" })).json();
    expect(ports).toEqual([expect.objectContaining({ name: "c", hub: 3 })]);
    expectError(await app.inject({ method: "GET", url: "/v1/hubs/7/ports" }), 404, "not-found");
    expectError(await app.inject({ method: "GET", url: "/v1/hubs/x/ports" }), 400, "invalid-request");
  });

  it("GET /v1/leases and /v1/flows", async () => {
    const leases = (await app.inject({ method: "GET", url: "/v1/leases" })).json();
    expect(leases[0]).toMatchObject({ netdev: "user0", leases: [{ ip: "10.0.2.15", state: "bound" }] });
    expect(leases[0]).toMatchObject({
      leases6: [{ ip: "fec0::15", iaid: 1, duid: "00030001525400123456", state: "bound" }],
      neighbours6: [{ address: "fec0::15", mac: "52:54:00:12:34:56" }],
    });
    const flows = (await app.inject({ method: "GET", url: "/v1/flows" })).json();
    expect(flows.tcp[0]).toMatchObject({ netdev: "user0", guest: "10.0.2.15:40000", toGuestBytes: 2000 });
    expect(flows.udp).toEqual([]);
  });

  it("unknown routes are 404 with the error shape", async () => {
    expectError(await app.inject({ method: "GET", url: "/v2/nothing" }), 404, "not-found");
  });
});

describe("ports", () => {
  it("POST /v1/hubs/:id/ports opens a stream listener with a generated id", async () => {
    const res = await json("POST", "/v1/hubs/0/ports", {
      type: "stream",
      server: true,
      addr: { type: "inet", host: "127.0.0.1", port: 8011 },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ id: "api0", hub: 0, kind: "stream-x", ports: ["api0#1"] });
    expect(world.opened).toEqual([
      {
        type: "stream",
        id: "api0",
        hub: 0,
        server: true,
        addr: { type: "inet", host: "127.0.0.1", port: 8011 },
        reconnect: 0,
      },
    ]);
    expect(
      world.hubs
        .get(0)
        .ports()
        .map((p) => p.name),
    ).toContain("api0#1");
  });

  it("POST accepts socket and dgram bodies, with ids", async () => {
    let res = await json("POST", "/v1/hubs/3/ports", {
      type: "socket",
      id: "s9",
      mode: "connect",
      addr: { host: "127.0.0.1", port: 9000 },
    });
    expect(res.statusCode).toBe(201);
    res = await json("POST", "/v1/hubs/3/ports", {
      type: "dgram",
      local: { type: "inet", host: "127.0.0.1", port: 9001 },
      remote: { type: "inet", host: "127.0.0.1", port: 9002 },
    });
    expect(res.statusCode).toBe(201);
    expect(world.opened.map((c) => c.type)).toEqual(["socket", "dgram"]);
  });

  it("POST accepts vde bodies: joining a switch or being one, never both", async () => {
    let res = await json("POST", "/v1/hubs/0/ports", {
      type: "vde",
      id: "v1",
      sock: "/tmp/sw",
      port: 3,
      group: "kvm",
      mode: "0770",
    });
    expect(res.statusCode).toBe(201);
    res = await json("POST", "/v1/hubs/0/ports", { type: "vde", id: "v2", listen: "/tmp/usw" });
    expect(res.statusCode).toBe(201);
    expect(world.opened).toEqual([
      {
        type: "vde",
        id: "v1",
        hub: 0,
        mode: "join",
        dir: "/tmp/sw",
        port: 3,
        group: "kvm",
        permissions: 0o770,
      },
      { type: "vde", id: "v2", hub: 0, mode: "listen", dir: "/tmp/usw" },
    ]);
    expectError(
      await json("POST", "/v1/hubs/0/ports", { type: "vde", listen: "/a", sock: "/b" }),
      400,
      "unknown-field",
    );
    expectError(
      await json("POST", "/v1/hubs/0/ports", { type: "vde", listen: "/a", port: 2 }),
      400,
      "unknown-field",
    );
    expectError(
      await json("POST", "/v1/hubs/0/ports", { type: "vde", sock: "/a", mode: "9" }),
      400,
      "invalid-request",
    );
    expect(world.opened).toHaveLength(2);
  });

  it("POST accepts a websocket listener, defaults filled in; refuses a cert without a key and bad origins", async () => {
    const res = await json("POST", "/v1/hubs/0/ports", {
      type: "websocket",
      id: "w1",
      listen: { host: "", port: 8080 },
      path: "/net",
      origins: ["http://localhost:8000"],
      tokenFile: "/run/ws.token",
    });
    expect(res.statusCode).toBe(201);
    expect(world.opened).toEqual([
      {
        type: "websocket",
        id: "w1",
        hub: 0,
        listen: { host: "0.0.0.0", port: 8080 },
        path: "/net",
        framing: "raw",
        origins: ["http://localhost:8000"],
        tokenFile: "/run/ws.token",
      },
    ]);
    const ok = { type: "websocket", listen: { host: "127.0.0.1", port: 8080 } };
    expectError(await json("POST", "/v1/hubs/0/ports", { ...ok, cert: "/c.pem" }), 400, "invalid-request");
    expectError(
      await json("POST", "/v1/hubs/0/ports", { ...ok, origins: ["localhost:8000"] }),
      400,
      "invalid-request",
    );
    expectError(await json("POST", "/v1/hubs/0/ports", { ...ok, framing: "json" }), 400, "invalid-request");
    expectError(await json("POST", "/v1/hubs/0/ports", { ...ok, path: "net" }), 400, "invalid-request");
  });

  it("POST accepts a vxlan body as the CLI's config (ctl ports add), defaulting the ports to 4789", async () => {
    const res = await json("POST", "/v1/hubs/3/ports", {
      type: "vxlan",
      id: "vx0",
      vni: 42,
      remotes: [{ host: "192.0.2.1", port: 4789 }],
      local: { host: "192.0.2.2", port: 0 },
    });
    expect(res.statusCode).toBe(201);
    expect(world.opened.at(-1)).toEqual({
      type: "vxlan",
      id: "vx0",
      hub: 3,
      vni: 42,
      remotes: [{ host: "192.0.2.1", port: 4789 }],
      local: { host: "192.0.2.2", port: 4789 },
      dstport: 4789,
    });
    const bad = { type: "vxlan", vni: 1, remotes: [], local: { host: "192.0.2.2", port: 0 } };
    expectError(await json("POST", "/v1/hubs/3/ports", bad), 400, "invalid-request");
    expectError(await json("POST", "/v1/hubs/3/ports", { ...bad, vni: 1 << 24 }), 400, "invalid-request");
  });

  it("POST refuses bad bodies: unknown fields, bad ports, malformed JSON, taken ids, unknown hubs", async () => {
    const ok = { type: "stream", server: true, addr: { type: "inet", host: "127.0.0.1", port: 8011 } };
    expectError(await json("POST", "/v1/hubs/0/ports", { ...ok, colour: "red" }), 400, "unknown-field");
    expectError(
      await json("POST", "/v1/hubs/0/ports", { ...ok, addr: { ...ok.addr, port: 70000 } }),
      400,
      "invalid-request",
    );
    expectError(
      await json("POST", "/v1/hubs/0/ports", { ...ok, addr: { ...ok.addr, host: "localhost" } }),
      400,
      "invalid-request",
    );
    expectError(
      await json("POST", "/v1/hubs/0/ports", { ...ok, server: false, addr: { ...ok.addr, port: 0 } }),
      400,
      "invalid-request",
    );
    expectError(
      await json("POST", "/v1/hubs/0/ports", {
        type: "socket",
        mode: "connect",
        addr: { host: "", port: 1 },
      }),
      400,
      "invalid-request",
    );
    const bad = await app.inject({
      method: "POST",
      url: "/v1/hubs/0/ports",
      payload: '{"type": "stream",',
      headers: { "content-type": "application/json" },
    });
    expectError(bad, 400, "malformed-json");
    const text = await app.inject({
      method: "POST",
      url: "/v1/hubs/0/ports",
      payload: "type=stream",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expectError(text, 415, "unsupported-media-type");
    expectError(await json("POST", "/v1/hubs/0/ports", { ...ok, id: "s0" }), 409, "id-taken");
    expectError(await json("POST", "/v1/hubs/5/ports", ok), 404, "not-found");
    expectError(
      await json("POST", "/v1/hubs/0/ports", { ...ok, addr: { ...ok.addr, port: 1 } }),
      409,
      "bind-failed",
    );
    expect(world.opened).toEqual([]);
  });

  it("DELETE /v1/ports/:id closes a netdev, or one client port by name", async () => {
    await json("POST", "/v1/hubs/0/ports", {
      type: "stream",
      id: "t1",
      server: true,
      addr: { type: "inet", host: "127.0.0.1", port: 8011 },
    });
    let res = await app.inject({ method: "DELETE", url: "/v1/ports/t1" });
    expect(res.statusCode).toBe(204);
    expect(
      world.hubs
        .get(0)
        .ports()
        .map((p) => p.name),
    ).toEqual(["a", "b"]);
    res = await app.inject({ method: "DELETE", url: "/v1/ports/b" });
    expect(res.statusCode).toBe(204);
    expect(world.ports[1]?.closed).toBe(true);
    expect(
      world.hubs
        .get(0)
        .ports()
        .map((p) => p.name),
    ).toEqual(["a"]);
    expectError(await app.inject({ method: "DELETE", url: "/v1/ports/t1" }), 404, "not-found");
    // a port nobody configured (no owning netdev) is not ours to close
    expectError(await app.inject({ method: "DELETE", url: "/v1/ports/a" }), 404, "not-found");
  });
});

describe("forwards", () => {
  const rule = { proto: "tcp", hostPort: 2222, guestPort: 22 };

  it("GET, POST, DELETE", async () => {
    expect((await app.inject({ method: "GET", url: "/v1/forwards" })).json()).toEqual([]);
    const res = await json("POST", "/v1/forwards", rule);
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ id: 1, netdev: "user0", proto: "tcp", hostPort: 2222, guestPort: 22 });
    const any = await json("POST", "/v1/forwards", { hostPort: 0, guestPort: 80, hostAddr: "127.0.0.1" });
    expect(any.statusCode).toBe(201);
    expect(any.json()).toMatchObject({ id: 2, proto: "tcp", hostAddr: "127.0.0.1", bound: { port: 40000 } });
    const list = (await app.inject({ method: "GET", url: "/v1/forwards" })).json();
    expect(list.map((f: { id: number }) => f.id)).toEqual([1, 2]);
    expect((await app.inject({ method: "DELETE", url: "/v1/forwards/1" })).statusCode).toBe(204);
    expectError(await app.inject({ method: "DELETE", url: "/v1/forwards/1" }), 404, "not-found");
    expectError(await app.inject({ method: "DELETE", url: "/v1/forwards/abc" }), 400, "invalid-request");
    expect(world.forwards.rules.map((r) => r.id)).toEqual([2]);
  });

  it("refuses bad rules with 400, duplicates with 409", async () => {
    expectError(await json("POST", "/v1/forwards", { ...rule, hostPort: 70000 }), 400, "invalid-request");
    expectError(await json("POST", "/v1/forwards", { ...rule, guestPort: 0 }), 400, "invalid-request");
    expectError(await json("POST", "/v1/forwards", { ...rule, hostPort: -1 }), 400, "invalid-request");
    expectError(await json("POST", "/v1/forwards", { ...rule, hostPort: "2222" }), 400, "invalid-request");
    expectError(await json("POST", "/v1/forwards", { ...rule, proto: "sctp" }), 400, "invalid-request");
    expectError(await json("POST", "/v1/forwards", { ...rule, guestAddr: "10.0.2" }), 400, "invalid-request");
    expectError(await json("POST", "/v1/forwards", { ...rule, extra: 1 }), 400, "unknown-field");
    expectError(await json("POST", "/v1/forwards", { proto: "tcp", hostPort: 1 }), 400, "invalid-request");
    expectError(await json("POST", "/v1/forwards", [rule]), 400, "invalid-request");
    const malformed = await app.inject({
      method: "POST",
      url: "/v1/forwards",
      payload: "{hostPort: 1}",
      headers: { "content-type": "application/json" },
    });
    expectError(malformed, 400, "malformed-json");
    expectError(await json("POST", "/v1/forwards", { ...rule, netdev: "nope" }), 400, "invalid");
    expect((await json("POST", "/v1/forwards", rule)).statusCode).toBe(201);
    expectError(await json("POST", "/v1/forwards", rule), 409, "conflict");
    expectError(await json("POST", "/v1/forwards", { ...rule, hostPort: 1 }), 409, "bind-failed");
    expect(world.forwards.rules).toHaveLength(1);
  });
});

describe("capture", () => {
  async function waitForCapture(hub: number): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (
        world.hubs
          .get(hub)
          .ports()
          .some((p) => p.kind === "capture")
      )
        return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error("no capture port appeared");
  }

  it("streams a pcap of what the hub floods, ending after ?count=N", async () => {
    const pending = app.inject({ method: "GET", url: "/v1/hubs/0/capture?count=3" });
    await waitForCapture(0);
    const frames = [Buffer.alloc(60, 1), Buffer.alloc(1514, 2), Buffer.alloc(42, 3), Buffer.alloc(70, 4)];
    world.ports[0]?.emit(frames.slice(0, 2));
    world.ports[1]?.emit(frames.slice(2));
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/vnd.tcpdump.pcap");
    const pcap = readPcap(res.rawPayload);
    expect(pcap.ok).toBe(true);
    if (!pcap.ok) return;
    expect(pcap.value.map((p) => p.data)).toEqual(frames.slice(0, 3));
    // the capture left the hub when it ended
    expect(
      world.hubs
        .get(0)
        .ports()
        .map((p) => p.name),
    ).toEqual(["a", "b"]);
  });

  it("ends after ?seconds=S", async () => {
    const t0 = Date.now();
    const res = await app.inject({ method: "GET", url: "/v1/hubs/3/capture?seconds=0.2" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    const pcap = readPcap(res.rawPayload);
    expect(pcap.ok && pcap.value).toEqual([]);
  });

  it("refuses unknown hubs and bad bounds", async () => {
    expectError(await app.inject({ method: "GET", url: "/v1/hubs/9/capture" }), 404, "not-found");
    expectError(
      await app.inject({ method: "GET", url: "/v1/hubs/0/capture?count=0" }),
      400,
      "invalid-request",
    );
    expectError(
      await app.inject({ method: "GET", url: "/v1/hubs/0/capture?count=x" }),
      400,
      "invalid-request",
    );
    expectError(
      await app.inject({ method: "GET", url: "/v1/hubs/0/capture?seconds=0" }),
      400,
      "invalid-request",
    );
    expectError(
      await app.inject({ method: "GET", url: "/v1/hubs/0/capture?snaplen=9" }),
      400,
      "unknown-field",
    );
  });
});

describe("metrics and openapi", () => {
  it("GET /metrics has per-port, per-hub and per-protocol counters", async () => {
    world.ports[0]?.emit([Buffer.alloc(60, 1)]);
    hostFaults.setLogger(silentLogger);
    hostFaults.report("test-place", "EMFILE", "a test");
    hostFaults.report("test-place", "EMFILE", "a test");
    const res = await app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    const t = res.body;
    expect(t).toContain('usernet_info{version="9.9.9"} 1');
    expect(t).toContain(`usernet_internal_errors_total ${internalErrors.total}`);
    expect(t).toContain('usernet_host_faults_total{where="test-place",code="EMFILE"} 2');
    expect(t).toContain('usernet_dhcp_messages_total{netdev="user0",type="saveFailures"} 0');
    expect(t).toContain('usernet_port_rx_frames_total{hub="0",port="a",kind="scripted",netdev=""} 1');
    expect(t).toContain('usernet_port_tx_bytes_total{hub="0",port="b",kind="stream-listen",netdev="s0"} 60');
    expect(t).toContain(
      'usernet_port_drops_total{hub="0",port="b",kind="stream-listen",netdev="s0",reason="tx-queue-full"} 2',
    );
    expect(t).toContain('usernet_hub_frames_total{hub="0"} 1');
    expect(t).toContain('usernet_stack_frames_total{netdev="user0",direction="rx"} 10');
    expect(t).toContain(
      'usernet_stack_drops_total{netdev="user0",protocol="ipv4",reason="ipv4-bad-checksum"} 4',
    );
    expect(t).toContain('usernet_flows{netdev="user0",protocol="tcp"} 2');
    expect(t).toContain('usernet_tcp_retransmitted_segments_total{netdev="user0"} 12');
    expect(t).toContain('usernet_tcp_timeouts_total{netdev="user0"} 2');
    expect(t).toContain('usernet_tcp_fast_retransmits_total{netdev="user0"} 3');
    expect(t).toContain('usernet_tcp_out_of_order_segments_total{netdev="user0"} 4');
    expect(t).toContain('usernet_tcp_duplicate_segments_total{netdev="user0"} 5');
    expect(t).toContain('usernet_tcp_window_probes_total{netdev="user0"} 6');
    expect(t).toContain('usernet_tcp_flow_limit{netdev="user0",scope="per-guest"} 32768');
    expect(t).toContain('usernet_bound_limit{netdev="user0",resource="udpSockets",scope="per-guest"} 1024');
    expect(t).toContain('usernet_bound_limit{netdev="user0",resource="tftpSessions",scope="total"} 64');
    expect(t).toContain('usernet_bound_refused_total{netdev="user0",resource="dnsQueries"} 2');
    expect(t).toContain('usernet_tcp_time_wait{netdev="user0"} 8');
    expect(t).toContain('usernet_tcp_time_wait_recycled_total{netdev="user0"} 3');
    expect(t).toContain('usernet_dhcp_messages_total{netdev="user0",type="acks"} 1');
    expect(t).toContain('usernet_dhcp_leases{netdev="user0",state="bound"} 1');
    expect(t).toContain('usernet_dhcpv6_messages_total{netdev="user0",kind="informationRequests"} 2');
    expect(t).toContain('usernet_dhcpv6_leases{netdev="user0",state="bound"} 1');
    expect(t).toContain('usernet_dhcpv6_dropped_total{netdev="user0",reason="dhcpv6-too-short"} 1');
    expect(t).toContain('usernet_ipv6_neighbours{netdev="user0"} 1');
    expect(t).toContain('usernet_dns_messages_total{netdev="user0",kind="queries"} 3');
    expect(t).toContain('usernet_dns_upstream_failures_total{netdev="user0",reason="timeout"} 1');
    expect(t).toContain('usernet_tftp_transfers_total{netdev="user0",result="completed"} 1');
    expect(t).toContain('usernet_tftp_bytes_sent_total{netdev="user0"} 6000');
    expect(t).toContain("# TYPE usernet_port_rx_frames_total counter");
    // scraped values follow the live counters, not the first scrape
    world.ports[0]?.emit([Buffer.alloc(60, 1)]);
    const again = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(again).toContain('usernet_port_rx_frames_total{hub="0",port="a",kind="scripted",netdev=""} 2');
  });

  it("GET /openapi.json describes every route", async () => {
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.version).toBe("9.9.9");
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        "/metrics",
        "/v1/events",
        "/v1/flows",
        "/v1/forwards",
        "/v1/forwards/{id}",
        "/v1/hubs",
        "/v1/hubs/{id}/capture",
        "/v1/hubs/{id}/ports",
        "/v1/leases",
        "/v1/ports/{id}",
        "/v1/status",
      ].sort(),
    );
    const post = doc.paths["/v1/forwards"].post;
    expect(post.requestBody.content["application/json"].schema.additionalProperties).toBe(false);
  });
});

describe("authentication", () => {
  it("a token-protected instance wants Authorization: Bearer", async () => {
    const tcp = await buildApi(world.facade, { token: "s3cret" });
    try {
      expectError(await tcp.inject({ method: "GET", url: "/v1/status" }), 401, "unauthorized");
      const wrong = await tcp.inject({
        method: "GET",
        url: "/v1/status",
        headers: { authorization: "Bearer nope" },
      });
      expectError(wrong, 401, "unauthorized");
      const right = await tcp.inject({
        method: "GET",
        url: "/v1/status",
        headers: { authorization: "Bearer s3cret" },
      });
      expect(right.statusCode).toBe(200);
    } finally {
      await tcp.close();
    }
  });
});

describe("startApi", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "usernet-api-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const get = (socketPath: string, path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ socketPath, path }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });

  it("listens on a unix socket with mode 0600, in a 0700 directory it creates", async () => {
    const path = join(dir, "sub", "api.sock");
    const api = await startApi({ socket: path }, world.facade, silentLogger);
    try {
      expect(api.addresses).toEqual([`unix:${path}`]);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, "sub")).mode & 0o777).toBe(0o700);
      const r = await get(path, "/v1/status");
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).hubs).toHaveLength(2);
      // a second server on the same live socket is refused
      await expect(startApi({ socket: path }, world.facade, silentLogger)).rejects.toThrow(
        /another process is listening/,
      );
    } finally {
      await api.close();
    }
    // a stale socket file left behind is replaced
    const again = await startApi({ socket: path }, world.facade, silentLogger);
    await again.close();
  });

  it("refuses a TCP listener without a token, and serves one with", async () => {
    await expect(
      startApi({ listen: { host: "127.0.0.1", port: 0 } }, world.facade, silentLogger),
    ).rejects.toThrow(/needs a token/);
    const api = await startApi(
      { listen: { host: "127.0.0.1", port: 0 }, token: "t0k" },
      world.facade,
      silentLogger,
    );
    try {
      const url = api.addresses[0] as string;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const no = await fetch(`${url}/v1/status`);
      expect(no.status).toBe(401);
      const yes = await fetch(`${url}/v1/status`, { headers: { authorization: "Bearer t0k" } });
      expect(yes.status).toBe(200);
    } finally {
      await api.close();
    }
  });

  it("closing ends a live capture instead of waiting for its client", async () => {
    const path = join(dir, "api.sock");
    const api = await startApi({ socket: path }, world.facade, silentLogger);
    const ended = new Promise<number>((resolve, reject) => {
      const req = request({ socketPath: path, path: "/v1/hubs/0/capture" }, (res) => {
        let n = 0;
        res.on("data", (c: Buffer) => {
          n += c.length;
        });
        res.on("end", () => resolve(n));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
    for (
      let i = 0;
      i < 200 &&
      !world.hubs
        .get(0)
        .ports()
        .some((p) => p.kind === "capture");
      i++
    ) {
      await new Promise((r) => setTimeout(r, 5));
    }
    world.ports[0]?.emit([Buffer.alloc(60, 7)]);
    await api.close();
    expect(await ended).toBe(24 + 16 + 60);
  });
});

describe("logging", () => {
  it("fastify's lines go through the service's logger, in its format", async () => {
    const out: string[] = [];
    const log = createLogger("debug", { write: (s: string) => out.push(s) }, { component: "api" }, "json");
    const logged = await buildApi(world.facade, { logLevel: "debug", log });
    try {
      expect((await logged.inject({ method: "GET", url: "/no/such/route" })).statusCode).toBe(404);
    } finally {
      await logged.close();
    }
    const lines = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === "incoming request")).toMatchObject({
      level: "info",
      component: "api",
      req: "GET /no/such/route",
    });
    expect(lines.find((l) => l.msg === "request completed")).toMatchObject({ status: 404 });
  });
});
