/**
 * Socket state inside a test's namespace, read with `ss` (iproute2): for waiting on a
 * listener or a connection without ever opening one (a probe connection to a hub
 * listener would become a hub port).
 */
import type { Netns } from "./netns.js";

/**
 * The ports in each `ss` row. (Which columns ss prints depends on the filter: no
 * Netid with one protocol, no State with a state filter; the addresses are the fields
 * with a colon.)
 */
async function ssPorts(ns: Netns, args: string[]): Promise<number[][]> {
  const r = await ns.exec("ss", ["-Hn", ...args], 5000);
  return r.stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) =>
      l
        .trim()
        .split(/\s+/)
        .filter((f) => f.includes(":"))
        .map((f) => Number(f.split(":").pop())),
    );
}

/** Polls (every 100 ms, up to `timeoutMs`) until `probe` returns true. */
export async function pollUntil(
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until a TCP socket listens on `port` inside the namespace. */
export function waitTcpListening(ns: Netns, port: number, timeoutMs = 10_000): Promise<void> {
  return pollUntil(`a TCP listener on port ${port} in ${ns.name}`, timeoutMs, async () =>
    (await ssPorts(ns, ["-lt"])).some((ports) => ports[0] === port),
  );
}

/** Waits until an established TCP connection has `port` as its local or peer port. */
export function waitTcpEstablished(ns: Netns, port: number, timeoutMs = 20_000): Promise<void> {
  return pollUntil(`an established TCP connection on port ${port} in ${ns.name}`, timeoutMs, async () =>
    (await ssPorts(ns, ["-t", "state", "established"])).some((ports) => ports.includes(port)),
  );
}
