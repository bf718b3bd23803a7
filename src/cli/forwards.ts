/**
 * The port-forward grammars of QEMU's user networking:
 *
 *   hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport
 *   -redir [tcp|udp]:hostport:[guestaddr]:guestport            (legacy, all host addresses)
 *
 * An IPv6 address is written in brackets, as libslirp's hostfwd takes it:
 * `hostfwd=tcp:[::1]:2222-[fec0::15]:22` (QEMU's own parser refuses IPv6, QEMU issue
 * #2876), `-redir tcp:2222:[fec0::15]:22`. An empty guest address on an IPv6 host
 * address (`tcp:[::1]:2222-:22`) means the guest's first IPv6 address the stack
 * learned (as libslirp resolves `::` late); either family may forward to the other.
 *   guestfwd=[tcp]:[server]:port-cmd:COMMAND
 *   guestfwd=[tcp]:[server]:port-tcp:HOST:PORT
 *
 * As in QEMU (net/slirp.c): an empty protocol means tcp, an empty host address binds
 * every address, host port 0 asks the kernel for any free port, an empty guest address
 * means the first DHCP address, and an empty guestfwd server means net + 4 (filled in
 * by the user netdev, which knows the network). The colon after the protocol is not
 * optional: `tcp:2222-:22` is refused, as QEMU refuses it.
 *
 * Only the syntax is checked here; whether addresses fit the network is the user
 * netdev's job. guestfwd's chardev target is limited to `tcp:HOST:PORT` (QEMU takes any
 * chardev there) and `cmd:` runs COMMAND through the shell for each connection.
 */
import type { GuestForward, HostForward } from "../config.js";
import { checkHostForward, forwardFieldProblem } from "../forward-rule.js";
import { parseIpv4 } from "../stack/wire/addr.js";
import { isHost, parseHostPort, parsePort } from "./inet.js";

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const good = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

export const hostfwdForm =
  "[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport such as hostfwd=tcp::2222-:22 or hostfwd=tcp:[::1]:2222-[fec0::15]:22";
export const redirForm =
  "[tcp|udp]:hostport:[guestaddr]:guestport such as -redir tcp:2222::22 or -redir tcp:2222:[fec0::15]:22";
export const guestfwdForm =
  "[tcp]:[server]:port-cmd:COMMAND or [tcp]:[server]:port-tcp:HOST:PORT such as guestfwd=tcp:10.0.2.100:1234-tcp:127.0.0.1:80";

/** cuts `s` at the first `sep`; undefined when there is none */
function cut(s: string, sep: string): [string, string] | undefined {
  const i = s.indexOf(sep);
  return i < 0 ? undefined : [s.slice(0, i), s.slice(i + sep.length)];
}

/**
 * cuts an address field off `s` at `sep`: "[IPv6]" up to its closing bracket (which
 * `sep` must follow), anything else as `cut` does; the brackets are not returned.
 */
function cutAddr(s: string, sep: string): [string, string] | undefined {
  if (!s.startsWith("[")) return cut(s, sep);
  const close = s.indexOf("]");
  if (close < 0 || s.slice(close + 1, close + 1 + sep.length) !== sep) return undefined;
  return [s.slice(1, close), s.slice(close + 1 + sep.length)];
}

function parseOptionalAddr(s: string): string | undefined {
  return s === "" || parseIpv4(s) !== undefined ? s : undefined;
}

/** a port as the rule checker takes it: a number when written in plain decimal, else the text */
const portValue = (s: string): number | string => (/^(0|[1-9][0-9]{0,4})$/.test(s) ? Number(s) : s);

/**
 * The grammar is cut here; each field is checked by forward-rule.ts as soon as it is
 * cut, so the problem named is the leftmost one.
 */
export function parseHostForward(s: string): Parsed<HostForward> {
  const p1 = cut(s, ":");
  if (!p1) return bad("missing ':' after the protocol");
  const proto = p1[0] === "" ? "tcp" : p1[0];
  const protoProblem = forwardFieldProblem("proto", proto);
  if (protoProblem) return bad(protoProblem);
  const p2 = cutAddr(p1[1], ":");
  if (!p2)
    return bad(
      p1[1].startsWith("[") ? "missing ']:' after the host address" : "missing ':' after the host address",
    );
  if (p1[1].startsWith("[") && !p2[0].includes(":"))
    return bad(`bad host address "[${p2[0]}]" (brackets are for IPv6)`);
  const addrProblem = forwardFieldProblem("hostAddr", p2[0]);
  if (addrProblem) return bad(addrProblem);
  const p3 = cut(p2[1], "-");
  if (!p3) return bad("missing '-' between host and guest side");
  return guestSide(p3[1], { proto, hostAddr: p2[0], hostPort: portValue(p3[0]) });
}

export function parseRedirect(s: string): Parsed<HostForward> {
  const p1 = cut(s, ":");
  if (!p1) return bad("missing ':' after the protocol");
  const proto = p1[0] === "" ? "tcp" : p1[0];
  const problem = forwardFieldProblem("proto", proto);
  if (problem) return bad(problem);
  const p2 = cut(p1[1], ":");
  if (!p2) return bad("missing ':' after the host port");
  return guestSide(p2[1], { proto, hostAddr: "", hostPort: portValue(p2[0]) });
}

function guestSide(s: string, host: Record<"proto" | "hostAddr" | "hostPort", unknown>): Parsed<HostForward> {
  const hostPortProblem = forwardFieldProblem("hostPort", host.hostPort);
  if (hostPortProblem) return bad(hostPortProblem);
  const p = cutAddr(s, ":");
  if (!p)
    return bad(
      s.startsWith("[")
        ? "missing ']:' after the guest address"
        : "missing ':' between guest address and port",
    );
  if (s.startsWith("[") && !p[0].includes(":"))
    return bad(`bad guest address "[${p[0]}]" (brackets are for IPv6)`);
  const r = checkHostForward({ ...host, guestAddr: p[0], guestPort: portValue(p[1]) });
  return r.ok ? good(r.value) : bad(r.reason);
}

/** `server` is "" when not given; the caller fills in the network's default */
export function parseGuestForward(s: string): Parsed<GuestForward> {
  const p1 = cut(s, ":");
  if (!p1) return bad("missing ':' after the protocol");
  if (p1[0] !== "" && p1[0] !== "tcp") return bad(`bad protocol "${p1[0]}" (only tcp)`);
  const p2 = cut(p1[1], ":");
  if (!p2) return bad("missing ':' after the server address");
  const server = parseOptionalAddr(p2[0]);
  if (server === undefined) return bad(`bad server address "${p2[0]}"`);
  const p3 = cut(p2[1], "-");
  if (!p3) return bad("missing '-' before the target");
  const port = parsePort(p3[0]);
  if (port === undefined) return bad(`bad port "${p3[0]}" (1..65535)`);
  const target = p3[1];
  if (target.startsWith("cmd:")) {
    const command = target.slice(4);
    if (command.trim() === "") return bad("empty command after cmd:");
    return good({ proto: "tcp", server, port, target: { kind: "cmd", command } });
  }
  if (target.startsWith("tcp:")) {
    const hp = parseHostPort(target.slice(4));
    if (!hp || hp.host === "" || !isHost(hp.host)) return bad(`bad target "${target}" (tcp:HOST:PORT)`);
    return good({ proto: "tcp", server, port, target: { kind: "tcp", host: hp.host, port: hp.port } });
  }
  return bad(`bad target "${target}" (cmd:COMMAND or tcp:HOST:PORT)`);
}

/** an address as the grammar writes it: IPv6 in brackets */
const bracketed = (a: string): string => (typeof a === "string" && a.includes(":") ? `[${a}]` : a);

/** back to QEMU's spelling (libslirp's for IPv6), for messages */
export function formatHostForward(f: HostForward): string {
  return `${f.proto}:${bracketed(f.hostAddr)}:${f.hostPort}-${bracketed(f.guestAddr)}:${f.guestPort}`;
}
