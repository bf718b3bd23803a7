/**
 * Port forwards from the host into a QEMU guest, with QEMU's spellings (hostfwd= on
 * -netdev user and legacy -redir): host clients reach busybox httpd and an echo
 * service in the guest, restrict=on keeps the guest in while forwards still work, and
 * a rule whose host port is taken fails alone with a message naming the port.
 * (Ports avoid 10080: fetch refuses it, it is on the WHATWG "bad ports" list.)
 */
import { expect, test } from "vitest";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const guestNet = { ip: "10.0.2.15/24", gw: "10.0.2.2" };
const started = /^# attach a QEMU guest/m;

/** A host-side TCP client inside the namespace: prints what the server sent, or "ERR <code>". */
const httpGet = (port: number) =>
  [
    process.execPath,
    [
      "-e",
      `fetch("http://127.0.0.1:${port}/index.html").then(r => r.text()).then(t => console.log(t.trim()), e => console.log("ERR " + (e.cause?.code ?? e.message)))`,
    ],
  ] as const;

describeE2E("port forwards into a QEMU guest", ["root", "netns", "guest", "usernet"], () => {
  const e2e = e2eScope();

  test("hostfwd= and -redir reach busybox httpd in the guest; with restrict=on the guest stays in; a taken port fails alone", async () => {
    const ns = await e2e.netns();
    // something already holds 127.0.0.1:18081, so that rule must fail and the others work
    const blocker = ns.spawn("blocker", process.execPath, [
      "-e",
      "require('node:net').createServer().listen(18081, '127.0.0.1'); setTimeout(() => {}, 600000)",
    ]);
    e2e.defer(() => blocker.kill());
    await new Promise((r) => setTimeout(r, 500));
    const u = await e2e.usernet(
      ns,
      [
        "-netdev",
        "user,id=u0,restrict=on,hostfwd=tcp:127.0.0.1:18080-:80,hostfwd=tcp:127.0.0.1:18081-:80",
        "-redir",
        "tcp:18082::80",
        "-netdev",
        "socket,id=s0,listen=127.0.0.1:10000",
      ],
      { ready: { tcp: [10000, 18080, 18082], stdout: started } },
    );
    expect(u.stderr).toMatch(/127\.0\.0\.1:18081.*(EADDRINUSE|in use)/);
    const g = await e2e.guest(ns, {
      netdev: "socket,id=n0,connect=127.0.0.1:10000",
      nic: "virtio-net-pci",
      ...guestNet,
    });
    await g.runOk(
      "mkdir -p /tmp/www && echo hello-from-guest > /tmp/www/index.html && httpd -p 80 -h /tmp/www",
    );
    // serving inside the guest first, so a failure below is the forward's
    expect((await g.runOk("wget -q -O - http://127.0.0.1/index.html")).trim()).toBe("hello-from-guest");

    const [cmd, args] = httpGet(18080);
    expect((await ns.execOk(cmd, args)).trim()).toBe("hello-from-guest");
    const [cmd2, args2] = httpGet(18082);
    expect((await ns.execOk(cmd2, args2)).trim()).toBe("hello-from-guest");

    // restrict=on: the guest cannot reach the host's loopback through the gateway
    const hostServer = ns.spawn("host-http", process.execPath, [
      "-e",
      "require('node:http').createServer((q, s) => s.end('host')).listen(10090, '127.0.0.1'); setTimeout(() => {}, 600000)",
    ]);
    e2e.defer(() => hostServer.kill());
    await new Promise((r) => setTimeout(r, 500));
    const out = await g.run("wget -T 5 -q -O - http://10.0.2.2:10090/ 2>&1; echo rc=$?", {
      timeoutMs: 20_000,
    });
    expect(out.output).not.toMatch(/^host$/m);
    expect(out.output).toMatch(/rc=1/);

    // many forwarded connections in a row all get through
    const many = await ns.execOk(
      process.execPath,
      [
        "-e",
        `(async () => { let ok = 0; for (let i = 0; i < 50; i++) { const t = await fetch("http://127.0.0.1:18080/index.html").then(r => r.text(), () => ""); if (t.trim() === "hello-from-guest") ok++; } console.log(ok); })()`,
      ],
      120_000,
    );
    expect(many.trim()).toBe("50");
  });

  test("without restrict the guest reaches the host's loopback through 10.0.2.2, and a forwarded client sees data both ways", async () => {
    const ns = await e2e.netns();
    const hostServer = ns.spawn("host-http", process.execPath, [
      "-e",
      "require('node:http').createServer((q, s) => s.end('host-ok')).listen(10090, '127.0.0.1'); setTimeout(() => {}, 600000)",
    ]);
    e2e.defer(() => hostServer.kill());
    await e2e.usernet(
      ns,
      [
        "-netdev",
        "user,id=u0,hostfwd=tcp::18080-10.0.2.15:7777",
        "-netdev",
        "socket,id=s0,listen=127.0.0.1:10000",
      ],
      { ready: { tcp: [10000, 18080, 10090], stdout: started } },
    );
    const g = await e2e.guest(ns, {
      netdev: "socket,id=n0,connect=127.0.0.1:10000",
      nic: "e1000",
      ...guestNet,
    });
    expect((await g.runOk("wget -q -O - http://10.0.2.2:10090/")).trim()).toBe("host-ok");
    // an echo service in the guest: what the host client sends comes back
    await g.runOk("(nc -l -p 7777 -e cat &) ; sleep 0.5");
    const echoed = await ns.execOk(
      process.execPath,
      [
        "-e",
        `const s = require('node:net').connect(18080, '127.0.0.1', () => s.write('ping-through-forward\\n')); let b = ''; s.on('data', d => { b += d; if (b.includes('\\n')) { console.log(b.trim()); process.exit(0); } }); setTimeout(() => { console.log('TIMEOUT ' + b); process.exit(0); }, 20000);`,
      ],
      30_000,
    );
    expect(echoed.trim()).toBe("ping-through-forward");
  });
});
