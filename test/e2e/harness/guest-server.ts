/**
 * Guests that listen, usernet that connects: for tests that restart usernet under a
 * running guest.
 *
 * QEMU 7.2's `-netdev socket,connect=` and `stream,server=off` never reconnect, so a
 * guest that connected to usernet loses its network for good when usernet restarts.
 * The other way round survives: the guest listens (`-netdev socket,listen=`, which
 * accepts a new connection after the old one closes) and usernet connects with
 * `-netdev socket,connect=` (its connector reconnects with backoff). Each guest gets
 * its own port; `usernetConnectArgs()` gives usernet one connector per guest.
 */
import type { Netns } from "./netns.js";
import type { E2eScope } from "./scope.js";
import { waitTcpEstablished } from "./sockets.js";
import type { Usernet } from "./usernet.js";

/** The guest's netdev: listen on 127.0.0.1:port inside the namespace. */
export function listeningNetdev(port: number): string {
  return `socket,id=n0,listen=127.0.0.1:${port}`;
}

/** usernet arguments: one `-netdev socket,connect=` per guest port. */
export function usernetConnectArgs(ports: readonly number[]): string[] {
  return ports.flatMap((p, i) => ["-netdev", `socket,id=g${i},connect=127.0.0.1:${p}`]);
}

/**
 * Starts usernet with `userArgs` plus a connector to each guest port and waits until
 * every connection is established.
 */
export async function startConnectedUsernet(
  e2e: E2eScope,
  ns: Netns,
  userArgs: readonly string[],
  guestPorts: readonly number[],
  label?: string,
): Promise<Usernet> {
  const u = await e2e.usernet(ns, [...userArgs, ...usernetConnectArgs(guestPorts)], label ? { label } : {});
  for (const p of guestPorts) await waitTcpEstablished(ns, p, 20_000);
  return u;
}
