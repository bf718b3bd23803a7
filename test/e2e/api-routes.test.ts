/**
 * The management API of a running usernet, on TCP with a token, driven by curl (a
 * real HTTP client) inside the test's namespace, with a QEMU guest on the hub:
 *
 * - the token: no header or a wrong token gets 401 (with `WWW-Authenticate: Bearer`),
 *   the right one gets through;
 * - /openapi.json passes an OpenAPI validator (@seriousme/openapi-schema-validator),
 *   and its paths are exactly the routes of README's API table;
 * - every route in that table is called at least once against the running service,
 *   and every reply's status, media type and body are checked against what
 *   /openapi.json documents for that route and status (bodies with ajv);
 * - a port attached at run time (POST /v1/hubs/0/ports: a connector to the guest's
 *   listener) carries the guest's DHCP (busybox udhcpc) and pings; after
 *   DELETE /v1/ports/ID the guest's pings go unanswered.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv } from "ajv";
import { expect, test } from "vitest";
import { readPcap } from "../../src/ports/pcap.js";
import { udhcpc } from "./harness/dhcp-clients.js";
import type { Guest } from "./harness/guest.js";
import { listeningNetdev } from "./harness/guest-server.js";
import type { Netns } from "./harness/netns.js";
import { parsePing } from "./harness/ping.js";
import { describeE2E, repoRoot } from "./harness/prereqs.js";
import { Proc } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";
import { pollUntil, waitTcpEstablished } from "./harness/sockets.js";

const apiPort = 18300;
const fwdPort = 18302;
const udpPort = 18303;
const guestPort = 11000;
const token = "e2e-token-0123456789abcdef";

const tftpErrorServer = `
const s = require("node:dgram").createSocket("udp4");
s.on("message", (m, from) => s.send(Buffer.concat([Buffer.from([0, 5, 0, 1]), Buffer.from("no such file here\\0")]), from.port, from.address));
s.bind(${udpPort}, "127.0.0.1", () => process.stdout.write("listening\\n"));
`;

type Method = "GET" | "POST" | "DELETE";

interface Reply {
  status: number;
  /** media type without parameters, "" when none */
  type: string;
  body: string;
  headers: string;
}

/** The routes of README's "Management API" table, as `METHOD /path/{id}`. */
function readmeRoutes(): string[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Management API"));
  const table = section.slice(0, section.indexOf("\n\n", section.indexOf("| route |")));
  return [...table.matchAll(/`(GET|POST|DELETE) (\/[^`[]*)/g)].map(
    (m) => `${m[1]} ${(m[2] as string).replace(/:(\w+)/g, "{$1}")}`,
  );
}

/** The part of an OpenAPI 3 document the checks read (after $refs are resolved). */
type OpenApiDoc = {
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema?: object }> }> }>
  >;
};

describeE2E(
  "management API over TCP with a token: every route against a running usernet, /openapi.json",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("token, OpenAPI document, every route checked against it, a port attached and detached at run time", async () => {
      const dir = mkdtempSync(join(tmpdir(), "une2e-apiroutes-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const tokenFile = join(dir, "token");
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      const ns = await e2e.netns();
      const guest = await e2e.guest(ns, {
        name: "g",
        netdev: listeningNetdev(guestPort),
        nic: "virtio-net-pci",
      });
      await e2e.usernet(
        ns,
        [
          "--api",
          "off",
          "--api-listen",
          `127.0.0.1:${apiPort}`,
          "--api-token-file",
          tokenFile,
          "-netdev",
          "user,id=u0,dns-upstream=127.0.0.1:5353",
        ],
        { ready: { tcp: [apiPort] } },
      );

      // One request with curl in the namespace; headers to a file, body to stdout or `out`.
      let n = 0;
      const http = async (
        method: Method,
        path: string,
        opts: { auth?: string | null; body?: unknown; out?: string } = {},
      ): Promise<Reply> => {
        const headerFile = join(dir, `h${n++}`);
        const args = ["-sS", "--max-time", "20", "-X", method, "-D", headerFile, "-o", opts.out ?? "-"];
        args.push("-w", "\n%{http_code} %{content_type}");
        const auth = opts.auth === undefined ? `Bearer ${token}` : opts.auth;
        if (auth !== null) args.push("-H", `Authorization: ${auth}`);
        if (opts.body !== undefined)
          args.push("-H", "content-type: application/json", "--data-binary", JSON.stringify(opts.body));
        const r = await ns.exec("curl", [...args, `http://127.0.0.1:${apiPort}${path}`], 30_000);
        expect(r.code, `curl ${method} ${path}: ${r.stderr}`).toBe(0);
        const cut = r.stdout.lastIndexOf("\n");
        const [code, type = ""] = r.stdout.slice(cut + 1).split(" ");
        return {
          status: Number(code),
          type: (type.split(";")[0] as string).trim(),
          body: r.stdout.slice(0, cut),
          headers: readFileSync(headerFile, "utf8"),
        };
      };

      // --- the token ---
      for (const auth of [null, "Bearer not-the-token-at-all", `Basic ${token}`]) {
        const r = await http("GET", "/v1/status", { auth });
        expect(r.status, `Authorization: ${auth}`).toBe(401);
        expect(r.headers).toMatch(/^www-authenticate: Bearer\r?$/im);
        expect(JSON.parse(r.body)).toMatchObject({ error: { reason: "unauthorized" } });
      }
      expect((await http("GET", "/openapi.json", { auth: null })).status).toBe(401);

      // --- the OpenAPI document, validated; its paths are README's routes ---
      const docReply = await http("GET", "/openapi.json");
      expect(docReply.status).toBe(200);
      expect(docReply.type).toBe("application/json");
      const validator = new Validator();
      const verdict = await validator.validate(JSON.parse(docReply.body));
      expect(verdict.errors ?? [], "OpenAPI validator").toEqual([]);
      expect(verdict.valid).toBe(true);
      const doc = validator.resolveRefs() as unknown as OpenApiDoc;
      const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
      );
      const readme = readmeRoutes();
      expect(readme.length).toBeGreaterThan(10);
      expect([...documented, "GET /openapi.json"].sort()).toEqual([...readme].sort());

      // --- every reply checked against the document ---
      const ajv = new Ajv({ strict: false, allErrors: true });
      const called = new Set<string>(["GET /openapi.json"]);
      const call = async (
        method: Method,
        template: string,
        path: string,
        opts: { body?: unknown; out?: string; want: number },
      ): Promise<Reply> => {
        const r = await http(method, path, opts);
        const what = `${method} ${path} → ${r.status} ${r.type}: ${r.body.slice(0, 300)}`;
        expect(r.status, what).toBe(opts.want);
        called.add(`${method} ${template}`);
        const response = doc.paths[template]?.[method.toLowerCase()]?.responses[String(r.status)];
        expect(response, `${what}: this status is not in /openapi.json`).toBeDefined();
        const content = response?.content;
        if (content === undefined) {
          expect(r.body, what).toBe("");
          return r;
        }
        expect(Object.keys(content), `${what}: media type`).toContain(r.type);
        const schema = content[r.type]?.schema;
        if (r.type === "application/json" && schema) {
          const validate = ajv.compile(schema);
          expect(validate(JSON.parse(r.body)) ? [] : validate.errors, what).toEqual([]);
        }
        return r;
      };

      // status, hubs
      const status = JSON.parse((await call("GET", "/v1/status", "/v1/status", { want: 200 })).body);
      expect(status.netdevs.map((d: { id: string }) => d.id)).toEqual(["u0"]);
      expect(status.internalErrors).toBe(0);
      const hubs = JSON.parse((await call("GET", "/v1/hubs", "/v1/hubs", { want: 200 })).body);
      expect(hubs).toEqual([expect.objectContaining({ id: 0, ports: ["u0"] })]);
      await call("GET", "/v1/hubs/{id}/ports", "/v1/hubs/7/ports", { want: 404 });

      // a port attached at run time: a connector to the guest's listener
      const connector = { type: "socket", mode: "connect", addr: { host: "127.0.0.1", port: guestPort } };
      await call("POST", "/v1/hubs/{id}/ports", "/v1/hubs/0/ports", {
        body: { ...connector, id: "rt0", bogus: 1 },
        want: 400,
      });
      await call("POST", "/v1/hubs/{id}/ports", "/v1/hubs/7/ports", { body: connector, want: 404 });
      const added = JSON.parse(
        (
          await call("POST", "/v1/hubs/{id}/ports", "/v1/hubs/0/ports", {
            body: { ...connector, id: "rt0" },
            want: 201,
          })
        ).body,
      );
      expect(added).toMatchObject({ id: "rt0", hub: 0, kind: expect.stringMatching(/connect/) });
      await waitTcpEstablished(ns, guestPort, 20_000);
      const ports = JSON.parse(
        (await call("GET", "/v1/hubs/{id}/ports", "/v1/hubs/0/ports", { want: 200 })).body,
      );
      expect(ports.map((p: { netdev: string }) => p.netdev)).toContain("rt0");

      // the guest's DHCP and pings go through it
      expect((await udhcpc(guest)).ip).toBe("10.0.2.15");
      expect(parsePing(await guest.runOk("ping -c 2 -W 2 10.0.2.2 || true"))?.received).toBe(2);
      const leases = JSON.parse((await call("GET", "/v1/leases", "/v1/leases", { want: 200 })).body);
      expect(leases).toEqual([
        expect.objectContaining({
          netdev: "u0",
          leases: [expect.objectContaining({ ip: "10.0.2.15", mac: "52:54:00:12:34:56", state: "bound" })],
        }),
      ]);

      // a UDP flow: busybox tftp asks a host-side server that answers with a TFTP error
      const udp = ns.spawn("udp server", process.execPath, ["-e", tftpErrorServer]);
      await udp.until("the UDP server", 10_000, () => (udp.stdout.includes("listening") ? true : undefined));
      const tftp = await guest.run(`busybox tftp -g -r x -l /tmp/x 10.0.2.2 ${udpPort}`);
      expect(tftp.output).toMatch(/no such file here/);
      const flows = JSON.parse((await call("GET", "/v1/flows", "/v1/flows", { want: 200 })).body);
      expect(JSON.stringify(flows.udp)).toContain("10.0.2.15");

      // forwards: add, use (curl through it to the guest's httpd), conflict, list, remove
      await guest.runOk(
        "mkdir -p /tmp/www && echo api-forward > /tmp/www/index.html && httpd -p 80 -h /tmp/www",
      );
      const rule = { hostAddr: "127.0.0.1", hostPort: fwdPort, guestPort: 80 };
      const fwd = JSON.parse(
        (await call("POST", "/v1/forwards", "/v1/forwards", { body: rule, want: 201 })).body,
      );
      expect(fwd).toMatchObject({ netdev: "u0", proto: "tcp", hostPort: fwdPort, guestPort: 80 });
      const page = await ns.exec("curl", ["-sS", "--max-time", "10", `http://127.0.0.1:${fwdPort}/`]);
      expect(page.stdout, page.stderr).toBe("api-forward\n");
      await call("POST", "/v1/forwards", "/v1/forwards", { body: rule, want: 409 });
      await call("POST", "/v1/forwards", "/v1/forwards", { body: { ...rule, netdev: "nope" }, want: 400 });
      const list = JSON.parse((await call("GET", "/v1/forwards", "/v1/forwards", { want: 200 })).body);
      expect(list.map((f: { id: number }) => f.id)).toEqual([fwd.id]);
      await call("DELETE", "/v1/forwards/{id}", `/v1/forwards/${fwd.id}`, { want: 204 });
      await call("DELETE", "/v1/forwards/{id}", `/v1/forwards/${fwd.id}`, { want: 404 });
      const gone = await ns.exec("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${fwdPort}/`]);
      expect(gone.code).not.toBe(0);

      // a bounded capture of the guest's pings
      await call("GET", "/v1/hubs/{id}/capture", "/v1/hubs/7/capture?count=1", { want: 404 });
      const pcapFile = join(dir, "hub0.pcap");
      const capture = new Proc("curl capture", ...curlCapture(ns, pcapFile));
      e2e.defer(() => capture.kill(1000));
      await pollUntil("the capture port", 10_000, async () => {
        const s = JSON.parse((await http("GET", "/v1/status")).body);
        return s.ports.some((p: { kind: string }) => p.kind === "capture");
      });
      await guest.run("ping -c 3 -i 0.2 -W 2 10.0.2.2");
      expect((await capture.waitExit(15_000))?.code, capture.tail()).toBe(0);
      expect(capture.stdout).toMatch(/^200 application\/vnd\.tcpdump\.pcap$/m);
      called.add("GET /v1/hubs/{id}/capture");
      const pcap = readPcap(readFileSync(pcapFile));
      expect(pcap.ok && pcap.value.length).toBe(4);

      // the event stream (the dashboard's) stays open: the log's tail, then states; curl ends it after 3 s
      const events = await ns.exec(
        "curl",
        [
          "-sS",
          "--max-time",
          "3",
          "-H",
          `Authorization: Bearer ${token}`,
          `http://127.0.0.1:${apiPort}/v1/events?interval=250`,
        ],
        10_000,
      );
      expect(events.code, events.stderr).toBe(28);
      expect(events.stdout).toMatch(/^event: log-tail\ndata: \[/);
      expect(events.stdout).toMatch(/\nevent: state\ndata: \{"at":\d+,"status":\{"version":/);
      called.add("GET /v1/events");

      // metrics name the runtime port
      const metrics = await call("GET", "/metrics", "/metrics", { want: 200 });
      expect(metrics.body).toMatch(
        /^usernet_port_rx_frames_total\{hub="0",port="rt0",kind="[^"]+",netdev="rt0"\} [1-9]/m,
      );

      // detach: the guest's traffic no longer reaches usernet
      await call("DELETE", "/v1/ports/{id}", "/v1/ports/rt0", { want: 204 });
      await call("DELETE", "/v1/ports/{id}", "/v1/ports/rt0", { want: 404 });
      await call("DELETE", "/v1/ports/{id}", "/v1/ports/u0", { want: 409 });
      const after = JSON.parse(
        (await call("GET", "/v1/hubs/{id}/ports", "/v1/hubs/0/ports", { want: 200 })).body,
      );
      expect(after.map((p: { netdev: string }) => p.netdev)).not.toContain("rt0");
      await expectNoPing(guest);

      expect([...called].sort()).toEqual([...readme].sort());
    });
  },
  { timeoutMs: 180_000 },
);

/** argv for curl reading a 4-frame capture of hub 0 into `file` (inside the namespace). */
function curlCapture(ns: Netns, file: string): [string, string[]] {
  const [cmd, ...args] = ns.wrap("curl", [
    "-sS",
    "--max-time",
    "30",
    "-H",
    `Authorization: Bearer ${token}`,
    "-o",
    file,
    "-w",
    "%{http_code} %{content_type}\n",
    `http://127.0.0.1:${apiPort}/v1/hubs/0/capture?count=4`,
  ]);
  return [cmd as string, args];
}

async function expectNoPing(g: Guest): Promise<void> {
  const out = await g.run("ping -c 2 -W 1 10.0.2.2");
  expect(parsePing(out.output)?.received, out.output).toBe(0);
}
