/**
 * Port forwards added at run time (API), kept in one JSON file in the state directory
 * so they come back after a restart. Forwards from the command line are not kept here:
 * they come back from the command line.
 *
 * Theory of operation
 * - The file is `{ "version": 1, "nextId": N, "forwards": [{ "id", "netdev", "rule" }] }`.
 *   `nextId` is kept so that an id, once handed out, is never handed out again, not even
 *   after a restart (a client holding an old id must never remove someone else's rule).
 * - Read and written as every state file is (VersionedStateFile, state-file.ts).
 * - `save` hands the file to a StateWriter (state-file.ts): written off the event loop,
 *   coalesced, atomically (temp file, fsync, rename, directory fsync): a crash leaves
 *   the old or the new file, never a torn one. It resolves true once the change is
 *   durable, false when the write failed (logged once, counted); it never rejects.
 * - `load` reads the file once at start. A missing file is empty; an unreadable or
 *   corrupt one is logged and treated as empty; malformed entries are skipped (logged).
 * Not done: locking against a second process using the same directory.
 */
import * as path from "node:path";
import type { HostForward } from "../config.js";
import { checkHostForward } from "../forward-rule.js";
import type { Logger } from "../log.js";
import { type StateFs, VersionedStateFile } from "../state-file.js";

export const FORWARD_FILE_VERSION = 1;
export const forwardFileName = "forwards.json";

export interface StoredForward {
  id: number;
  netdev: string;
  rule: HostForward;
}

export interface ForwardFile {
  nextId: number;
  forwards: StoredForward[];
}

/** A rule as read from JSON (checked by forward-rule.ts), or undefined when any field is wrong. */
export function parseStoredRule(v: unknown): HostForward | undefined {
  const r = checkHostForward(v);
  return r.ok ? r.value : undefined;
}

export class ForwardStore {
  readonly file: string;
  private readonly state: VersionedStateFile;

  constructor(
    readonly stateDir: string,
    private readonly log: Logger,
    fs?: StateFs,
  ) {
    this.file = path.join(stateDir, forwardFileName);
    this.state = new VersionedStateFile(this.file, FORWARD_FILE_VERSION, {
      log,
      what: "the runtime forwards",
      fileName: "the forward file",
      fallback: "starting without runtime forwards",
      shape: (body) => Array.isArray(body.forwards),
      ...(fs ? { fs } : {}),
    });
  }

  load(): ForwardFile {
    const out: ForwardFile = { nextId: 1, forwards: [] };
    const body = this.state.load();
    if (body === undefined) return out;
    const seen = new Set<number>();
    let skipped = 0;
    for (const e of body.forwards as unknown[]) {
      const entry = e as { id?: unknown; netdev?: unknown; rule?: unknown } | null;
      const rule = entry === null || typeof entry !== "object" ? undefined : parseStoredRule(entry.rule);
      const id = entry?.id;
      if (
        rule === undefined ||
        typeof id !== "number" ||
        !Number.isSafeInteger(id) ||
        id < 1 ||
        seen.has(id) ||
        typeof entry?.netdev !== "string" ||
        entry.netdev === ""
      ) {
        skipped++;
        continue;
      }
      seen.add(id);
      out.forwards.push({ id, netdev: entry.netdev, rule });
    }
    if (skipped > 0)
      this.log.warn("skipped malformed entries in the forward file", { file: this.file, skipped });
    const maxId = Math.max(0, ...seen);
    const next = typeof body.nextId === "number" && Number.isSafeInteger(body.nextId) ? body.nextId : 1;
    out.nextId = Math.max(next, maxId + 1);
    return out;
  }

  /** true once the file holding `f` (or a later state) is durable; false when that write failed */
  save(f: ForwardFile): Promise<boolean> {
    return this.state.save({ nextId: f.nextId, forwards: f.forwards });
  }

  flush(): Promise<void> {
    return this.state.flush();
  }

  failures(): number {
    return this.state.failures();
  }
}
