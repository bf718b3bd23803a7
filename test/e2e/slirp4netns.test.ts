/**
 * `usernet slirp4netns` as a drop-in for slirp4netns 1.2, run by an unprivileged user:
 *   1. `unshare -rn` as nobody makes a rootless namespace; `usernet slirp4netns
 *      --configure --mtu 65520 -r 3 PID tap0`, also as nobody, gives it networking:
 *      the ready fd says "1", tap0 is 10.0.2.100/24 with a default route, ping to
 *      10.0.2.2 is answered and TCP reaches a server on the host's loopback.
 *   2. rootlesskit (Debian's 1.1) with `--net=slirp4netns --slirp4netns-binary=WRAPPER`
 *      accepts the drop-in (it reads --help), starts it, and its slirp4netns port
 *      driver forwards a host port into the namespace through `--api-socket`.
 * Everything runs inside a test namespace ("host"), whose loopback stands for the
 * host's. /dev/net/tun is made 0666 for the test (Debian ships it 0600) and restored.
 * rootlesskit needs subordinate ids for nobody: a private mount namespace gets an
 * /etc/subuid and /etc/subgid bind-mounted for it; the machine's files are untouched.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { describeE2E, e2eMode, usernetMain } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const asNobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];
const tcpPort = 18090;
const fwdPort = 18091;

const tcpServer = `
const srv = require("node:net").createServer((c) => c.end("hello-from-host\\n"));
srv.listen(${tcpPort}, "127.0.0.1", () => process.stdout.write("listening\\n"));
`;

function have(bin: string): boolean {
  for (const d of ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]) {
    try {
      statSync(join(d, bin));
      return true;
    } catch {
      // next
    }
  }
  return false;
}

const rootlesskitMissing = ["rootlesskit", "newuidmap"].filter((b) => !have(b));
if (rootlesskitMissing.length > 0 && e2eMode() === "auto")
  process.stderr.write(
    `usernet e2e: skipping the rootlesskit test: no ${rootlesskitMissing.join(", ")} (USERNET_E2E=required makes this fail)\n`,
  );

describeE2E(
  "usernet slirp4netns (rootless namespaces, rootlesskit)",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();
    let tunMode = 0;
    let dir = "";

    beforeAll(() => {
      tunMode = statSync("/dev/net/tun").mode & 0o777;
      chmodSync("/dev/net/tun", 0o666);
      dir = mkdtempSync(join(tmpdir(), "une2e-s4n-"));
      chmodSync(dir, 0o755);
      const wrapper = join(dir, "usernet-slirp4netns");
      writeFileSync(wrapper, `#!/bin/sh\nexec '${process.execPath}' '${usernetMain()}' slirp4netns "$@"\n`, {
        mode: 0o755,
      });
      writeFileSync(join(dir, "subid"), "nobody:200000:65536\n", { mode: 0o644 });
      writeFileSync(join(dir, "index.html"), "hello-through-rootlesskit\n", { mode: 0o644 });
      // rootlesskit's home, runtime and state directories belong to nobody
      mkdirSync(join(dir, "home"), { mode: 0o700 });
      chownSync(join(dir, "home"), 65534, 65534);
    });
    afterAll(() => {
      if (tunMode) chmodSync("/dev/net/tun", tunMode);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test("an unprivileged user's namespace gets ping and TCP to the host's loopback", async () => {
      const host = await e2e.netns();
      const srv = host.spawn("tcp-server", process.execPath, ["-e", tcpServer]);
      await srv.until("listening", 10_000, () => (srv.stdout.includes("listening") ? true : undefined));
      const target = await host.spawnTarget("-rn", 120, asNobody);
      const pid = target.pid;
      const ready = join(dir, `ready-${pid}`);
      const main = usernetMain() as string;
      const drop = host.spawn("usernet-slirp4netns", "sh", [
        "-c",
        `exec ${asNobody.join(" ")} '${process.execPath}' '${main}' slirp4netns --configure --mtu 65520 -r 3 ${pid} tap0 3>'${ready}'`,
      ]);
      e2e.watch(drop);
      await drop.until("ready", 20_000, () => (drop.stderr.includes("drop-in ready") ? true : undefined));
      await new Promise((r) => setTimeout(r, 100));
      expect(
        (await host.execOk("sh", ["-c", `cat '${ready}'`])).trim(),
        "the ready fd got the byte slirp4netns writes",
      ).toBe("1");
      const inside = (cmd: string) =>
        host.exec("nsenter", ["-t", String(pid), "-n", "sh", "-c", cmd], 20_000);
      const addr = await inside("ip -br addr show tap0; ip route; ip link show tap0");
      // a TAP's operstate reads UNKNOWN while it is up
      expect(addr.stdout).toMatch(/tap0\s+(UP|UNKNOWN)\s+10\.0\.2\.100\/24/);
      expect(addr.stdout).toMatch(/default via 10\.0\.2\.2 dev tap0/);
      expect(addr.stdout).toMatch(/tap0: <[^>]*\bUP\b[^>]*> mtu 65520 /);
      const ping = await inside("busybox ping -c 2 -W 2 10.0.2.2");
      expect(ping.stdout).toMatch(/2 packets transmitted, 2 packets received/);
      const tcp = await inside(`busybox nc 10.0.2.2 ${tcpPort} </dev/null`);
      expect(tcp.stdout).toBe("hello-from-host\n");
      // DNS at 10.0.2.3: the gateway's own name is answered without any upstream
      const dns = await inside("busybox nslookup host.usernet.internal 10.0.2.3");
      expect(dns.stdout).toMatch(/Address:\s+10\.0\.2\.2/);
      // the target goes away: the drop-in notices and exits by itself
      await target.kill(2000);
      const exit = await drop.waitExit(5000);
      expect(exit?.code).toBe(0);
      expect(drop.stderr).toMatch(/target process \d+ exited: closing/);
    });

    test("--disable-dns: nothing answers DNS at 10.0.2.3 and DHCP offers no DNS server", async () => {
      const host = await e2e.netns();
      const target = await host.spawnTarget("-n", 60);
      const pid = target.pid;
      const drop = host.spawn("usernet-slirp4netns", process.execPath, [
        usernetMain() as string,
        "slirp4netns",
        "--configure",
        "--disable-dns",
        String(pid),
        "tap0",
      ]);
      e2e.watch(drop);
      await drop.until("ready", 20_000, () => (drop.stderr.includes("drop-in ready") ? true : undefined));
      const inside = (cmd: string) =>
        host.exec("nsenter", ["-t", String(pid), "-n", "sh", "-c", cmd], 20_000);
      const dns = await inside("busybox timeout 10 busybox nslookup host.usernet.internal 10.0.2.3");
      expect(dns.stdout).not.toMatch(/Address:\s+10\.0\.2\.2/);
      // over TCP the refusal is immediate: a RST
      const tcp = await inside("busybox nc -w 3 10.0.2.3 53 </dev/null; echo rc=$?");
      expect(tcp.stdout).toMatch(/rc=1/);
      // udhcpc runs its script with the lease in the environment; the script prints it
      const script = join(dir, "udhcpc-print.sh");
      writeFileSync(script, "#!/bin/sh\n[ \"$1\" = bound ] && env | grep -E '^(ip|dns|router)=' || true\n", {
        mode: 0o755,
      });
      const lease = await inside(`busybox udhcpc -i tap0 -n -q -t 3 -s '${script}' 2>&1`);
      expect(lease.stdout, lease.stdout).toMatch(/ip=10\.0\.2\.15/);
      expect(lease.stdout).toMatch(/router=10\.0\.2\.2/);
      expect(lease.stdout).not.toMatch(/^dns=/m);
      await target.kill(2000);
      await drop.waitExit(5000);
    });

    // Missing tools fail the test under USERNET_E2E=required, as a missing Need does.
    test.skipIf(rootlesskitMissing.length > 0 && e2eMode() !== "required")(
      "rootlesskit runs the drop-in, and its port driver forwards through --api-socket",
      async () => {
        if (rootlesskitMissing.length > 0)
          throw new Error(
            `USERNET_E2E=required but ${rootlesskitMissing.join(" and ")} is missing (apt-get install rootlesskit uidmap)`,
          );
        const host = await e2e.netns();
        const script = [
          `mount --bind '${dir}/subid' /etc/subuid`,
          `mount --bind '${dir}/subid' /etc/subgid`,
          `exec ${asNobody.join(" ")} env HOME='${dir}/home' XDG_RUNTIME_DIR='${dir}/home' rootlesskit --net=slirp4netns` +
            ` --slirp4netns-binary='${dir}/usernet-slirp4netns' --mtu=65520 --disable-host-loopback` +
            ` --port-driver=slirp4netns -p 127.0.0.1:${fwdPort}:80/tcp --state-dir='${dir}/home/rk'` +
            ` sh -c 'ip -br addr show tap0; busybox ping -c 1 -W 2 10.0.2.2 | grep received;` +
            ` echo rk-inside-ready; exec busybox httpd -f -p 80 -h ${dir}'`,
        ].join(" && ");
        const rk = host.spawn("rootlesskit", "unshare", [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          script,
        ]);
        e2e.watch(rk);
        await rk.until("the namespace's shell", 30_000, () =>
          rk.stdout.includes("rk-inside-ready") ? true : undefined,
        );
        expect(rk.stdout).toMatch(/tap0\s+(UP|UNKNOWN)\s+10\.0\.2\.100\/24/);
        expect(rk.stdout).toMatch(/1 packets transmitted, 1 packets received/);
        let body = "";
        for (let i = 0; i < 50 && body === ""; i++) {
          const r = await host.exec("curl", [
            "-sS",
            "--max-time",
            "3",
            `http://127.0.0.1:${fwdPort}/index.html`,
          ]);
          body = r.code === 0 ? r.stdout : "";
          if (body === "") await new Promise((r) => setTimeout(r, 200));
        }
        expect(body).toBe("hello-through-rootlesskit\n");
      },
    );
  },
  { timeoutMs: 120_000 },
);
