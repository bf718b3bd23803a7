/**
 * The scene of the guest attack tests (guest-isolation, guest-identity): namespace
 * "host" runs usernet (its API on a unix socket), busybox httpd serving a 5 MiB file
 * and a sink that accepts connections and holds them (so a flow an attacker opens
 * stays), all on its loopback; "attacker" and "victim" each hold a TAP port of hub 0.
 * The victim's download must come through whatever the attacker does.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Netns } from "./netns.js";
import type { E2eScope } from "./scope.js";

export interface AttackScene {
  host: Netns;
  attacker: Netns;
  victim: Netns;
  /** the management API's unix socket, in the host namespace */
  api: string;
}

export interface AttackSceneOptions {
  tap: string;
  httpPort: number;
  sinkPort: number;
  /** the `-netdev user,...` argument */
  userNetdev: string;
}

export async function startAttackScene(
  e2e: E2eScope,
  o: AttackSceneOptions,
): Promise<AttackScene & { sha: string }> {
  const host = await e2e.netns();
  const attacker = await e2e.netns();
  const victim = await e2e.netns();
  const dir = mkdtempSync(join(tmpdir(), "une2e-attack-"));
  e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
  const file = randomBytes(5 * 1024 * 1024);
  writeFileSync(join(dir, "file.bin"), file);
  const sha = createHash("sha256").update(file).digest("hex");
  const httpd = host.spawn("httpd", "busybox", ["httpd", "-f", "-p", `127.0.0.1:${o.httpPort}`, "-h", dir]);
  e2e.watch(httpd);
  const sink = host.spawn("sink", process.execPath, [
    "-e",
    `const held = [];
require("node:net").createServer((s) => { held.push(s); s.on("error", () => {}); })
  .listen(${o.sinkPort}, "127.0.0.1", 4096, () => process.stdout.write("listening\\n"));`,
  ]);
  e2e.watch(sink);
  await sink.until("sink listening", 10_000, () => (sink.stdout.includes("listening") ? true : undefined));
  const api = join(dir, "api.sock");
  await e2e.usernet(
    host,
    [
      "--api",
      api,
      "-netdev",
      o.userNetdev,
      "-netdev",
      `tap,id=t0,ifname=${o.tap},netns=${attacker.name},vnet_hdr=off`,
      "-netdev",
      `tap,id=t1,ifname=${o.tap},netns=${victim.name},vnet_hdr=off`,
    ],
    { ready: { unix: [api] } },
  );
  return { host, attacker, victim, api, sha };
}

/** The sha256 of the victim's download of the host's file through 10.0.2.2 ("" when it failed). */
export async function victimDownloadSha(s: AttackScene, httpPort: number): Promise<string> {
  const curl = await s.victim.exec(
    "sh",
    ["-c", `curl -sS --max-time 60 http://10.0.2.2:${httpPort}/file.bin | sha256sum`],
    90_000,
  );
  return curl.stdout.split(" ")[0] ?? "";
}

/** usernet's /metrics, read with curl over the API socket. */
export function attackMetrics(s: AttackScene): Promise<string> {
  return s.host.execOk(
    "curl",
    ["-sS", "--max-time", "10", "--unix-socket", s.api, "http://usernet/metrics"],
    20_000,
  );
}
