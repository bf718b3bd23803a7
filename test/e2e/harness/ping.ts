/**
 * Pinging from a guest and judging the result by what busybox ping printed — the reply
 * lines and the summary — not by its exit code alone.
 */
import type { Guest } from "./guest.js";

export interface PingSummary {
  transmitted: number;
  received: number;
  lossPercent: number;
  /** "64 bytes from 10.0.2.2: seq=0 ttl=255 time=1.234 ms" lines */
  replies: { from: string; seq: number; ttl: number }[];
}

/** Parses busybox (or iputils) ping output; undefined when there is no summary line. */
export function parsePing(output: string): PingSummary | undefined {
  const sum = /(\d+) packets transmitted, (\d+) (?:packets )?received,.*?(\d+(?:\.\d+)?)% packet loss/.exec(
    output,
  );
  if (!sum) return undefined;
  const replies: PingSummary["replies"] = [];
  for (const m of output.matchAll(/\d+ bytes from ([\d.]+): (?:icmp_)?seq=(\d+) ttl=(\d+)/g)) {
    replies.push({ from: m[1] as string, seq: Number(m[2]), ttl: Number(m[3]) });
  }
  return {
    transmitted: Number(sum[1]),
    received: Number(sum[2]),
    lossPercent: Number(sum[3]),
    replies,
  };
}

/**
 * `busybox ping -c COUNT` from the guest to `target`; throws with the full output unless
 * every echo got exactly one reply from `target` (0% loss, COUNT reply lines).
 */
export async function expectPing(
  guest: Guest,
  target: string,
  opts: { count?: number; intervalS?: number; timeoutMs?: number; size?: number } = {},
): Promise<PingSummary> {
  const count = opts.count ?? 3;
  const size = opts.size !== undefined ? ` -s ${opts.size}` : "";
  // -W: seconds to wait for replies after the last echo.
  const cmd = `busybox ping -c ${count} -i ${opts.intervalS ?? 0.3} -W 3${size} ${target}`;
  const r = await guest.run(cmd, { timeoutMs: opts.timeoutMs ?? 30_000 });
  const s = parsePing(r.output);
  const fromTarget = s?.replies.filter((x) => x.from === target) ?? [];
  const seqs = new Set(fromTarget.map((x) => x.seq));
  if (
    r.code !== 0 ||
    !s ||
    s.transmitted !== count ||
    s.received !== count ||
    s.lossPercent !== 0 ||
    !/ 0% packet loss/.test(r.output) ||
    fromTarget.length !== count ||
    seqs.size !== count
  ) {
    throw new Error(`${guest.name}: \`${cmd}\` did not get ${count} replies (exit ${r.code}):\n${r.output}`);
  }
  return s;
}
