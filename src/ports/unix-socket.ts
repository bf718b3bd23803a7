/**
 * Making room for a unix socket listener: the one check every listener on a path runs
 * before it binds (QEMU stream/socket listeners, the management API, slirp4netns's API).
 *
 * Theory of operation
 * - Nothing at the path: fine.
 * - Something that is not a socket: an error; it is never removed.
 * - A socket: probe it with a connect. ECONNREFUSED (nobody listens: the process that
 *   made it died without cleaning up) means stale, and the file is removed. A connect
 *   that succeeds means a live server: refuse to start, rather than pull the path away
 *   from it (QEMU and slirp4netns unlink unconditionally). A connect that neither
 *   succeeds nor is refused within `probeTimeoutMs` (a listener with a full backlog),
 *   or fails otherwise (EACCES: someone else's), counts as live too.
 */
import { lstat, unlink } from "node:fs/promises";
import { createConnection } from "node:net";
import { describeError } from "./address.js";

export const probeTimeoutMs = 1000;

/**
 * Removes a stale socket file at `path`; resolves when the path is free to bind.
 * Rejects with `fail(why)` when something else is there or a server answers on it.
 */
export async function clearStaleSocket(path: string, fail: (why: string) => Error): Promise<void> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw fail(describeError(err));
  }
  if (!st.isSocket()) throw fail("the path exists and is not a socket; refusing to remove it");
  if (await someoneListens(path)) throw fail("another process is listening on that socket");
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw fail(`cannot remove stale socket: ${describeError(err)}`);
    }
  }
}

function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection({ path });
    const finish = (live: boolean) => {
      clearTimeout(timer);
      probe.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => finish(true), probeTimeoutMs);
    probe.once("connect", () => finish(true));
    probe.once("error", (err: NodeJS.ErrnoException) =>
      finish(err.code !== "ECONNREFUSED" && err.code !== "ENOENT"),
    );
  });
}
