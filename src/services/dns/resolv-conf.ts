/**
 * Which resolvers the DNS forwarder asks: the `dns-upstream=` servers when given,
 * else the `nameserver` lines of the host's /etc/resolv.conf.
 *
 * Pure functions of the file's text; the composition root reads the file (and only
 * when no `dns-upstream=` is given). A loopback nameserver such as systemd-resolved's
 * 127.0.0.53 is fine: the forwarder's queries leave from the host, not the guest.
 * Follows glibc's reading of the file: "#" and ";" start comments, only the first
 * three nameservers count (MAXNS), port 53 always; IPv6 nameservers count like IPv4
 * ones, except link-local ones with a zone (fe80::1%eth0), skipped with a note.
 * Not done: `options` (timeout, attempts,
 * rotate: the forwarder has its own), `search`/`domain` (DHCP hands out dnssearch=).
 */
import { parseIpv4 } from "../../stack/wire/addr.js";
import { parseIpv6 } from "../../stack/wire/ipv6-addr.js";
import type { DnsServerAddress } from "./upstream.js";

/** glibc's MAXNS: later nameserver lines are ignored by every resolver on the host. */
export const RESOLV_CONF_MAX_NAMESERVERS = 3;

export interface ResolvConf {
  nameservers: DnsServerAddress[];
  /** what was skipped and why, one line each, for the log */
  notes: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const nameservers: DnsServerAddress[] = [];
  const notes: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const [keyword, value, ...rest] = line.split(/\s+/);
    if (keyword !== "nameserver") continue;
    const where = `resolv.conf line ${i + 1}`;
    if (value === undefined) {
      notes.push(`${where}: nameserver without an address, skipped`);
    } else if (value.includes("%")) {
      notes.push(`${where}: nameserver ${value} with a zone skipped`);
    } else if (parseIpv4(value) === undefined && parseIpv6(value) === undefined) {
      notes.push(`${where}: "${value}" is not an IP address, skipped`);
    } else if (nameservers.length >= RESOLV_CONF_MAX_NAMESERVERS) {
      notes.push(
        `${where}: nameserver ${value} ignored (only the first ${RESOLV_CONF_MAX_NAMESERVERS} count)`,
      );
    } else {
      if (rest.length > 0) notes.push(`${where}: text after the address ignored`);
      nameservers.push({ host: value, port: 53 });
    }
  }
  return { nameservers, notes };
}

export interface UpstreamChoice {
  servers: DnsServerAddress[];
  source: "dns-upstream" | "resolv.conf" | "none";
  notes: string[];
}

/**
 * `configured` (from `dns-upstream=`) wins when not empty; otherwise the nameservers of
 * `resolvConfText` (undefined when the file could not be read). No servers at all is
 * not an error here: the forwarder then answers SERVFAIL, and the note says why.
 */
export function chooseUpstreams(
  configured: readonly DnsServerAddress[],
  resolvConfText: string | undefined,
): UpstreamChoice {
  if (configured.length > 0) return { servers: [...configured], source: "dns-upstream", notes: [] };
  if (resolvConfText === undefined) {
    return { servers: [], source: "none", notes: ["no dns-upstream= and no readable resolv.conf"] };
  }
  const parsed = parseResolvConf(resolvConfText);
  if (parsed.nameservers.length === 0) {
    return {
      servers: [],
      source: "none",
      notes: [...parsed.notes, "resolv.conf names no usable nameserver"],
    };
  }
  return { servers: parsed.nameservers, source: "resolv.conf", notes: parsed.notes };
}
