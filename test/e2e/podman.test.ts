/**
 * Podman (Debian's 4.3) with containers.conf's `[engine] network_cmd_path` pointing at
 * a wrapper that runs `usernet slirp4netns`: `podman run --network slirp4netns:...`,
 * as root and rootless (nobody, with subordinate ids), drives the drop-in end to end.
 *
 * Per mode (root, rootless):
 *   1. a container fetches 1 MiB from a server on the host's loopback through
 *      10.0.2.2 (allow_host_loopback=true, mtu=65520; sha256 compared), resolves a
 *      name through 10.0.2.3 (the only nameserver in its resolv.conf; the test's DNS
 *      server on 127.0.0.1:53 answers), reaches a server of its own on 127.0.0.1 (the
 *      drop-in brought `lo` up), and once it ends no drop-in process is left (Podman
 *      closes the exit fd); Podman's argv to the binary is compared whole (`--help`,
 *      then the run's flags), so a change in Podman's flags shows up here;
 *   2. outbound_addr=ADDR and outbound_addr=INTERFACE: a server on the test's
 *      "internet" (198.51.100.1 on a veth interface, d0) sees the chosen source address;
 *   3. `-p 127.0.0.1:PORT:80` reaches busybox httpd in a container with
 *      port_handler=rootlesskit (Podman's rootlessport, which dials 127.0.0.1 in the
 *      container) and port_handler=slirp4netns (through the drop-in's --api-socket).
 * These run with enable_ipv6=false; one run per mode takes Podman's defaults
 * (enable_ipv6=true: --enable-ipv6, and --disable-host-loopback) and checks that the
 * drop-in accepts them and IPv4 and DNS work.
 *
 * Isolation: everything runs in a test namespace ("host"), and each Podman session in a
 * private mount namespace of it, where /etc/resolv.conf says `nameserver 127.0.0.1`,
 * cgroup2 is mounted on /sys/fs/cgroup (`ip netns exec` remounts /sys), /run/netns is a
 * private tmpfs and, rootless, /etc/subuid and /etc/subgid name nobody's range. Podman's
 * configuration, storage (vfs) and runtime state live in a temp directory
 * (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, --root, --runroot, --tmpdir); the
 * machine's own Podman configuration and state are never read or written. The image
 * is `podman import` of a busybox-static tree: no registry is reached.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { describeE2E, e2eMode, usernetMain } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

type Mode = "root" | "rootless";

const httpPort = 18190;
const whoamiPort = 18191;
const fwdPort = 18192;
const image = "localhost/usernet-e2e-busybox";
const busyboxApplets = ["sh", "wget", "nslookup", "httpd", "cat", "sha256sum", "ip", "sleep", "echo", "true"];

const hostServer = `
const http = require("node:http"), crypto = require("node:crypto");
const blob = crypto.randomBytes(1024 * 1024);
const sha = crypto.createHash("sha256").update(blob).digest("hex");
let n = 0;
const ready = () => { if (++n === 2) console.log("HOST-READY " + sha); };
http.createServer((q, s) => s.end(blob)).listen(${httpPort}, "127.0.0.1", ready);
http.createServer((q, s) => s.end("peer=" + q.socket.remoteAddress + "\\n")).listen(${whoamiPort}, "198.51.100.1", ready);
setTimeout(() => {}, 3600e3);
`;

function have(bin: string): boolean {
  for (const d of ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/lib/podman"]) {
    try {
      statSync(join(d, bin));
      return true;
    } catch {
      // next
    }
  }
  return false;
}

const podmanMissing = ["podman", "crun", "conmon", "newuidmap", "rootlessport", "curl", "busybox"].filter(
  (b) => !have(b),
);
if (podmanMissing.length > 0 && e2eMode() === "auto")
  process.stderr.write(
    `usernet e2e: skipping the Podman tests: no ${podmanMissing.join(", ")} (USERNET_E2E=required makes this fail)\n`,
  );

describeE2E(
  "Podman with network_cmd_path at usernet slirp4netns (root and rootless)",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();
    let tunMode = 0;
    let dir = "";
    const imported = new Set<Mode>();

    beforeAll(() => {
      if (podmanMissing.length > 0) return;
      tunMode = statSync("/dev/net/tun").mode & 0o777;
      // nobody's drop-in opens the TAP inside Podman's user namespace
      chmodSync("/dev/net/tun", 0o666);
      // short: Podman puts the --api-socket at TMPDIR/<64 hex>.net, and a unix socket
      // path has at most 107 bytes
      dir = mkdtempSync("/tmp/une2e-pm-");
      chmodSync(dir, 0o755);
      const w = (name: string, text: string, mode = 0o644) => writeFileSync(join(dir, name), text, { mode });
      // the wrapper records its pid and argv, then is the drop-in (exec keeps the pid)
      w(
        "usernet-slirp4netns",
        `#!/bin/sh\necho "pid=$$ $*" >> '${dir}/argv.log'\n` +
          `exec '${process.execPath}' '${usernetMain()}' slirp4netns "$@" 2>> '${dir}/usernet.log'\n`,
        0o755,
      );
      for (const f of ["argv.log", "usernet.log"]) {
        w(f, "");
        chmodSync(join(dir, f), 0o666);
      }
      for (const mode of ["root", "rootless"] as const)
        w(
          `containers-${mode}.conf`,
          [
            "[containers]",
            // only the drop-in's DNS: Podman would otherwise add 8.8.8.8 and 8.8.4.4 when
            // the host's resolv.conf names only loopback resolvers
            'dns_servers = ["10.0.2.3"]',
            // no systemd, no cgroup delegation here; the hard limit is below Podman's default
            'cgroups = "disabled"',
            'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]',
            "[engine]",
            'cgroup_manager = "cgroupfs"',
            'events_logger = "none"',
            `network_cmd_path = "${dir}/usernet-slirp4netns"`,
            // root's default is /etc/containers/networks
            ...(mode === "root" ? ["[network]", `network_config_dir = "${dir}/r/networks"`] : []),
            "",
          ].join("\n"),
        );
      for (const [mode, state] of [
        ["root", join(dir, "r")],
        ["rootless", join(dir, "h")],
      ])
        w(
          `storage-${mode}.conf`,
          `[storage]\ndriver = "vfs"\ngraphroot = "${state}/storage"\nrunroot = "${state}/runroot"\n`,
        );
      w("registries.conf", "");
      w("resolv.conf", "nameserver 127.0.0.1\n");
      w("subid", "nobody:200000:65536\n");
      // the image: a busybox-static tree
      const rootfs = join(dir, "rootfs");
      for (const d of ["bin", "etc", "tmp", "www"]) mkdirSync(join(rootfs, d), { recursive: true });
      copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
      chmodSync(join(rootfs, "bin/busybox"), 0o755);
      for (const a of busyboxApplets) symlinkSync("busybox", join(rootfs, "bin", a));
      writeFileSync(join(rootfs, "www/index.html"), "hello-from-the-container\n");
      // made here, as root: nobody cannot write in dir
      const tar = spawnSync("tar", ["-C", rootfs, "-cf", join(dir, "rootfs.tar"), "."], { encoding: "utf8" });
      if (tar.status !== 0) throw new Error(`tar of the image tree failed: ${tar.stderr}`);
      mkdirSync(join(dir, "h"), { mode: 0o700 });
      chownSync(join(dir, "h"), 65534, 65534);
    });
    afterAll(() => {
      if (tunMode) chmodSync("/dev/net/tun", tunMode);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /**
     * Runs `body` (sh) with `podman` bound to the private configuration, in a private
     * mount namespace of `host`, as root or as nobody. Resolves with its output.
     */
    async function session(host: Netns, mode: Mode, body: string, timeoutMs = 150_000) {
      const state = join(dir, mode === "root" ? "r" : "h");
      const setup = [
        `mount --bind '${dir}/resolv.conf' /etc/resolv.conf`,
        "mount -t cgroup2 none /sys/fs/cgroup",
        "mkdir -p /run/netns",
        "mount -t tmpfs -o mode=755 tmpfs /run/netns",
      ];
      if (mode === "rootless")
        setup.push(
          `mount --bind '${dir}/subid' /etc/subuid`,
          `mount --bind '${dir}/subid' /etc/subgid`,
          // Podman wants / shared for rootless mounts; shared within this namespace only
          "mount --make-rshared /",
        );
      const script = join(dir, `session-${mode}-${Date.now()}.sh`);
      writeFileSync(
        script,
        [
          "set -u",
          `export HOME='${state}' XDG_RUNTIME_DIR='${state}/run'`,
          `export CONTAINERS_CONF='${dir}/containers-${mode}.conf' CONTAINERS_STORAGE_CONF='${dir}/storage-${mode}.conf'`,
          `export CONTAINERS_REGISTRIES_CONF='${dir}/registries.conf'`,
          `mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"`,
          `podman() { command podman --root '${state}/storage' --runroot '${state}/runroot' --tmpdir '${state}/t' --storage-driver vfs "$@"; }`,
          body,
          "",
        ].join("\n"),
        { mode: 0o644 },
      );
      const as = mode === "root" ? "" : "setpriv --reuid=nobody --regid=nogroup --clear-groups -- ";
      if (mode === "root") mkdirSync(state, { recursive: true });
      return host.exec(
        "unshare",
        [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          `${setup.join(" && ")} && exec ${as}sh '${script}' 2>&1`,
        ],
        timeoutMs,
      );
    }

    async function prepare(mode: Mode): Promise<Netns> {
      if (podmanMissing.length > 0)
        throw new Error(
          `USERNET_E2E=required but ${podmanMissing.join(", ")} is missing (apt-get install podman crun uidmap curl busybox-static)`,
        );
      const host = await e2e.netns();
      writeFileSync(join(dir, "argv.log"), "");
      writeFileSync(join(dir, "usernet.log"), "");
      if (!imported.has(mode)) {
        const tar = join(dir, "rootfs.tar");
        const imp = await session(host, mode, `podman import '${tar}' ${image} >/dev/null && echo IMPORTED`);
        expect(imp.stdout, imp.stdout).toMatch(/IMPORTED/);
        imported.add(mode);
      }
      return host;
    }

    /** "The internet": a veth pair d0/d1 in `host`, `addrs` on d0 (the first is its primary). */
    async function internet(host: Netns, addrs: string[]) {
      await host.execOk("ip", ["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
      for (const a of addrs) await host.execOk("ip", ["addr", "add", `${a}/24`, "dev", "d0"]);
      await host.execOk("ip", ["link", "set", "d0", "up"]);
      await host.execOk("ip", ["link", "set", "d1", "up"]);
    }

    const argvLines = () =>
      readFileSync(join(dir, "argv.log"), "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => {
          const m = /^pid=(\d+) (.*)$/.exec(l);
          return {
            pid: Number(m?.[1]),
            argv: (m?.[2] ?? l).replace(/\/netns\/netns-[0-9a-f-]+/, "/netns/netns-UUID"),
          };
        });
    const dropInAlive = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("slirp4netns");
      } catch {
        return false;
      }
    };
    /** Every drop-in Podman started has exited (within 5 s of the container's end). */
    async function expectNoDropInLeft() {
      const pids = argvLines().map((c) => c.pid);
      for (let i = 0; i < 50 && pids.some(dropInAlive); i++) await new Promise((r) => setTimeout(r, 100));
      const log = readFileSync(join(dir, "usernet.log"), "utf8");
      expect(pids.filter(dropInAlive), `drop-ins still running; their log:\n${log}`).toEqual([]);
      expect(log).not.toMatch(/internal error/);
    }

    for (const mode of ["root", "rootless"] as const) {
      test(`${mode}: host loopback through 10.0.2.2, DNS through 10.0.2.3, lo up, Podman's argv, nothing left`, async () => {
        const host = await prepare(mode);
        const srv = host.spawn("host-server", process.execPath, ["-e", hostServer]);
        await internet(host, ["198.51.100.1"]);
        const sha = await srv.until(
          "the host server",
          10_000,
          () => /HOST-READY (\w+)/.exec(srv.stdout)?.[1],
        );
        const dns = await e2e.dns(host, { port: 53, records: { "podman-e2e.test": ["198.51.100.7"] } });
        const r = await session(
          host,
          mode,
          `podman run --rm --network slirp4netns:allow_host_loopback=true,mtu=65520,enable_ipv6=false ${image} sh -c '
cat /etc/resolv.conf
ip -o link show lo; ip -o addr show tap0
echo "sha=$(wget -q -O - http://10.0.2.2:${httpPort}/blob | sha256sum)"
nslookup podman-e2e.test
httpd -p 127.0.0.1:8081 -h /www && wget -q -O - http://127.0.0.1:8081/index.html'
echo "podman-rc=$?"`,
        );
        const out = r.stdout;
        expect(out, out).toMatch(/podman-rc=0/);
        expect(out.match(/^nameserver .*/gm), "the container's only resolver is the drop-in's").toEqual([
          "nameserver 10.0.2.3",
        ]);
        expect(out).toMatch(/\d+: lo: <LOOPBACK,UP,LOWER_UP>/);
        expect(out).toMatch(/tap0\s+inet 10\.0\.2\.100\/24/);
        expect(out).toContain(`sha=${sha}`);
        expect(out).toMatch(/Name:\s+podman-e2e\.test\s+Address:\s+198\.51\.100\.7/);
        expect(dns.queries().some((q) => q.name === "podman-e2e.test")).toBe(true);
        expect(out).toContain("hello-from-the-container");
        // Podman asks --help, then runs it with these flags: a change here is a change in Podman
        const calls = argvLines();
        const netnsDir = mode === "root" ? "/run/netns" : `${dir}/h/run/netns`;
        expect(calls.map((c) => c.argv)).toEqual([
          "--help",
          `--mtu=65520 --enable-sandbox --enable-seccomp -c -e 3 -r 4 --netns-type=path ${netnsDir}/netns-UUID tap0`,
        ]);
        const log = readFileSync(join(dir, "usernet.log"), "utf8");
        expect(log, log).toMatch(/drop-in ready: tap0/);
        expect(log).toMatch(/exit-fd 3 closed: closing/);
        expect(log).not.toMatch(/internal error/);
        await expectNoDropInLeft();
      });

      test(`${mode}: Podman's defaults (enable_ipv6=true passes --enable-ipv6)`, async () => {
        const host = await prepare(mode);
        const dns = await e2e.dns(host, { port: 53, records: { "podman-e2e.test": ["198.51.100.7"] } });
        const r = await session(
          host,
          mode,
          `podman run --rm --network slirp4netns ${image} sh -c 'ip -o addr show tap0; nslookup podman-e2e.test'\necho "podman-rc=$?"`,
        );
        expect(r.stdout, r.stdout).toMatch(/podman-rc=0/);
        expect(r.stdout).toMatch(/tap0\s+inet 10\.0\.2\.100\/24/);
        expect(r.stdout).toMatch(/Name:\s+podman-e2e\.test\s+Address:\s+198\.51\.100\.7/);
        expect(dns.queries().some((q) => q.name === "podman-e2e.test")).toBe(true);
        const netnsDir = mode === "root" ? "/run/netns" : `${dir}/h/run/netns`;
        expect(argvLines().map((c) => c.argv)).toEqual([
          "--help",
          `--disable-host-loopback --mtu=65520 --enable-sandbox --enable-seccomp --enable-ipv6 -c -e 3 -r 4 --netns-type=path ${netnsDir}/netns-UUID tap0`,
        ]);
        await expectNoDropInLeft();
      });

      test(`${mode}: outbound_addr= as an address and as an interface name`, async () => {
        const host = await prepare(mode);
        const srv = host.spawn("host-server", process.execPath, ["-e", hostServer]);
        await internet(host, ["198.51.100.1", "198.51.100.2"]);
        await srv.until("the host server", 10_000, () => /HOST-READY (\w+)/.exec(srv.stdout)?.[1]);
        const run = (outbound: string) =>
          `podman run --rm --network slirp4netns:outbound_addr=${outbound},enable_ipv6=false ${image} wget -q -O - http://198.51.100.1:${whoamiPort}/`;
        const r = await session(host, mode, `${run("198.51.100.2")}\n${run("d0")}\necho "podman-rc=$?"`);
        expect(r.stdout, r.stdout).toMatch(/podman-rc=0/);
        expect(r.stdout.match(/^peer=.*/gm)).toEqual(["peer=198.51.100.2", "peer=198.51.100.1"]);
        const flags = argvLines()
          .map((c) => /--outbound-addr=\S+/.exec(c.argv)?.[0])
          .filter((f) => f !== undefined);
        expect(flags).toEqual(["--outbound-addr=198.51.100.2", "--outbound-addr=d0"]);
      });

      for (const handler of ["rootlesskit", "slirp4netns"] as const) {
        test(`${mode}: -p 127.0.0.1:${fwdPort}:80 with port_handler=${handler}`, async () => {
          const host = await prepare(mode);
          const r = await session(
            host,
            mode,
            `podman run -d --name web --network slirp4netns:port_handler=${handler},enable_ipv6=false -p 127.0.0.1:${fwdPort}:80 ${image} httpd -f -p 80 -h /www >/dev/null || echo run-failed
i=0; body=""
while [ $i -lt 50 ] && [ -z "$body" ]; do body=$(curl -sS --max-time 3 http://127.0.0.1:${fwdPort}/index.html 2>/dev/null); [ -n "$body" ] || sleep 0.2; i=$((i+1)); done
echo "body=$body"
podman rm -f -t 2 web >/dev/null; echo "rm-rc=$?"`,
          );
          expect(r.stdout, r.stdout).toContain("body=hello-from-the-container");
          expect(r.stdout).toMatch(/rm-rc=0/);
          const run = argvLines().find((c) => c.argv !== "--help");
          if (handler === "slirp4netns") expect(run?.argv).toMatch(/--api-socket[= ]\S+/);
          else expect(run?.argv).not.toMatch(/--api-socket/);
          await expectNoDropInLeft();
        });
      }
    }
  },
  { timeoutMs: 300_000 },
);
