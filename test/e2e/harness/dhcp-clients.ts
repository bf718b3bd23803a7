/**
 * Real DHCP clients in the e2e guest, and what their scripts print.
 *
 * The guest's scripts (guest/overlay/etc/udhcpc/default.script for busybox
 * udhcpc, guest/overlay/sbin/dhclient-script for ISC dhclient) print one line per
 * lease event, `udhcpc-lease: event=bound ip=… router=…` and `dhclient-lease:
 * reason=BOUND new_ip_address=…`, and configure eth0 from it. These helpers run the
 * clients with bounded retries and return the last such line as a record.
 */
import type { Guest } from "./guest.js";

/** key=value words of the last line starting with `prefix`; undefined when none. */
export function parseLeaseLine(output: string, prefix: string): Record<string, string> | undefined {
  const lines = output.split("\n").filter((l) => l.startsWith(prefix));
  const last = lines[lines.length - 1];
  if (last === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const m of last.slice(prefix.length).matchAll(/(\w+)=(\S*)/g)) out[m[1] as string] = m[2] as string;
  return out;
}

/**
 * busybox udhcpc on eth0: up to 5 DISCOVERs 2 s apart, quits once bound (no RELEASE).
 * Rejects when no lease came; resolves with the bound event's fields.
 */
export async function udhcpc(g: Guest, extra = ""): Promise<Record<string, string>> {
  const r = await g.run(`udhcpc -i eth0 -s /etc/udhcpc/default.script -n -q -t 5 -T 2 ${extra}`, {
    timeoutMs: 30_000,
  });
  const lease = parseLeaseLine(r.output, "udhcpc-lease: ");
  if (r.code !== 0 || lease?.event !== "bound")
    throw new Error(`${g.name}: udhcpc got no lease (exit ${r.code}):\n${r.output}`);
  return lease;
}

/**
 * ISC dhclient on eth0, in the foreground (`-d`, output to a file) until its script
 * prints the bound lease (bounded, 20 s), then killed with SIGKILL: no RELEASE, so the
 * server keeps the binding. (Letting it daemonize and stopping it with `-x` once
 * killed the guest's console shell.)
 */
export async function dhclient(g: Guest): Promise<Record<string, string>> {
  const files = "-sf /sbin/dhclient-script -lf /tmp/dhclient.leases -pf /run/dhclient.pid";
  const r = await g.run(
    [
      "rm -f /tmp/dhclient.out",
      // dhclient stays the subshell's child and is reaped there: orphaned, it would be
      // reaped by the console shell (PID 1), whose next read a late SIGCHLD can cut
      // short ("syntax error: unexpected end of file" for the following command)
      "(dhclient -4 -d -v " +
        files +
        " eth0 >/tmp/dhclient.out 2>&1 & p=$!; n=0; " +
        "while ! grep -qE 'dhclient-lease: reason=(BOUND|REBOOT)' /tmp/dhclient.out && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done; " +
        "kill -9 $p 2>/dev/null; wait $p 2>/dev/null)",
      "cat /tmp/dhclient.out",
    ].join("; "),
    { timeoutMs: 40_000 },
  );
  const lease = parseLeaseLine(r.output, "dhclient-lease: ");
  if (!lease || !["BOUND", "REBOOT"].includes(lease.reason ?? ""))
    throw new Error(`${g.name}: dhclient got no lease (exit ${r.code}):\n${r.output}`);
  return lease;
}

/** Sets eth0's MAC (the link goes down and up), so one guest can act as another client. */
export async function setMac(g: Guest, mac: string): Promise<void> {
  await g.runOk(
    `ip addr flush dev eth0; ip link set eth0 down; ip link set eth0 address ${mac}; ip link set eth0 up`,
  );
}
