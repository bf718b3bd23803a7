/**
 * The DHCP/BOOTP server of one user stack, sans-I/O: a request payload and the time in,
 * a reply payload and where to send it out.
 *
 * Theory of operation
 * - Input is the UDP payload of a datagram to port 67; the stack wraps the reply in
 *   UDP (67 → 68), IPv4 (from the server address) and Ethernet, to the destination in
 *   `DhcpReply.to`. `handle` never throws on guest bytes: undecodable or nonsensical
 *   requests are dropped and counted per reason (`stats().malformed`), requests not
 *   meant for us (replies, another server's REQUEST) per reason in `stats().ignored`.
 * - Clients are identified by MAC, as in libslirp; when a client sends option 61 and
 *   the lease recorded one too, they must match as well (several clients behind one
 *   MAC get separate leases). Matching on client id alone, as RFC 2131 allows, would
 *   hand one address to cloned VM images that share a DUID-derived client id.
 * - Addresses: a client gets, in this order, its static lease; the address it holds or
 *   last held (even after RELEASE or expiry, while nobody else took it, like libslirp
 *   which never forgets a MAC); the address it asks for (option 50) when free; the
 *   first never-used pool address; the free address whose lease ended longest ago.
 *   Pool addresses equal to the server, router or DNS addresses are never handed out,
 *   nor is an address the stack sees another MAC use now (`usedBy`: a guest with a
 *   static address, or one that kept an address after its lease ended), whether the
 *   client is offered one or asks for it (a REQUEST for it gets a NAK).
 *   No free address: no OFFER, counted as `poolExhausted` and logged (at most once a
 *   minute).
 * - DISCOVER → OFFER, the address held for the client for `offerHoldTime` (60 s).
 *   REQUEST (RFC 2131 4.3.2): with a server id not ours → ignored (and our offer
 *   dropped); SELECTING (our server id, option 50), INIT-REBOOT (option 50 alone),
 *   RENEWING/REBINDING (ciaddr alone) → ACK when the address can be this client's,
 *   else NAK (not in our pool, or someone else's). We are the only server on the
 *   virtual LAN, so an INIT-REBOOT for a free pool address we have no record of is
 *   ACKed (libslirp does the same), not answered with RFC 2131's silence. A REQUEST
 *   with no address at all gets the client's address or a new one (libslirp's
 *   "windows fix"). RELEASE ends the lease but keeps the association. DECLINE drops the
 *   client's lease and keeps the address out of use for `declineHoldTime` (600 s).
 *   INFORM → ACK without yiaddr and lease times. A request without option 53 is BOOTP:
 *   BOOTP reply with a permanent address (RFC 1534), options fitted into the 64-byte
 *   vendor area. libslirp answers only DISCOVER and REQUEST and ignores the rest.
 * - Replies carry options in libslirp's order: 53, 54, 1, 3, 6, 51, [58, 59], 12, 15,
 *   66, 119, [60 "HTTPClient" for an http:// bootfile, as libslirp], [26], [67]. The
 *   bracketed ones libslirp does not send except 60: T1 = lease/2 and T2 = lease*7/8
 *   (RFC 2131 defaults, spelled out), MTU when not 1500, bootfile also as option 67
 *   (UEFI PXE reads it). `restricted` leaves out 3 and 6, as libslirp. `siaddr` is the
 *   next server, `sname` the TFTP server name (when it fits), `file` the boot file.
 *   The parameter request list (55) is not honoured, as in libslirp: every client gets
 *   the same fixed set, which keeps replies identical to QEMU's; requested lease times
 *   (51) are ignored too. Options that do not fit the client's maximum message size
 *   (option 57, at least 576, at most the MTU) are left out and logged once, like
 *   libslirp's "DHCP packet size exceeded" warnings.
 * - Destination: "broadcast" for every reply by default, as libslirp (it always sends
 *   OFFER/ACK/NAK to 255.255.255.255); `replyMode: "rfc2131"` unicasts per RFC 2131 4.1,
 *   except that a set broadcast flag always gets a broadcast.
 * - Leases are saved through the injected LeaseStore after binds, renewals, releases,
 *   declines and BOOTP assignments (not after offers). Time is the `now` argument (ms).
 *   Leases loaded at start that end more than one lease time after the first `now` are
 *   capped to one lease time: they were written with another clock.
 * Not done: relay agents (giaddr is echoed, replies never go to a relay), option
 *   overload in replies, lease times chosen by the client, rapid commit (80), DHCPv6.
 */
import type { Logger } from "../../log.js";
import { DropCounters } from "../../stack/drop-counters.js";
import { ipv4ToString, isMulticastMac, macToString, parseIpv4 } from "../../stack/wire/addr.js";
import {
  BOOTP_MIN_LENGTH,
  BOOTP_REPLY,
  BOOTP_REQUEST,
  DHCP_FILE_LENGTH,
  DHCP_FLAG_BROADCAST,
  type DhcpMessage,
  DhcpMessageType,
  DhcpOption,
  decodeDhcp,
  dhcpMessageType,
  encodeDhcp,
  optIpv4,
  optionEncodedLength,
  optionIpv4,
  optionU16,
  optString,
  optU8,
  optU16,
  optU32,
} from "./dhcp-codec.js";
import {
  type DhcpServerConfig,
  fitsSname,
  type ResolvedDhcpConfig,
  resolveDhcpConfig,
} from "./dhcp-config.js";
import { type Lease, type LeaseState, type LeaseStore, sanitizeHostname } from "./dhcp-lease.js";

export interface DhcpReply {
  /** the UDP payload, to be sent from server:67 to port 68 */
  payload: Buffer;
  to: "broadcast" | { ip: number; mac: Buffer };
}

export interface DhcpStats {
  offers: number;
  acks: number;
  naks: number;
  releases: number;
  declines: number;
  informs: number;
  bootp: number;
  poolExhausted: number;
  /** lease saves that failed (full disk, ...); leases are then kept in memory only */
  saveFailures: number;
  /** dropped requests by reason */
  malformed: Record<string, number>;
  /** well-formed messages that were not for us, by reason */
  ignored: Record<string, number>;
}

/** A lease as the management API shows it. */
export interface DhcpLeaseInfo extends Omit<Lease, "state"> {
  /** "expired" for an offered or bound lease past its end */
  state: LeaseState | "expired";
  static: boolean;
}

/** Where libslirp leaves the room for the vendor area: a 576-byte IP datagram. */
const DEFAULT_MAX_PAYLOAD = 576 - 28;
const BOOTP_VEND_LENGTH = 64;
const OPTIONS_OFFSET = 240;
const EXHAUSTED_LOG_INTERVAL_MS = 60_000;
const NAK_MESSAGE = "requested address not available";
const UEFI_HTTP_VENDOR_CLASS = "HTTPClient";

interface Client {
  mac: string;
  clientId: string | undefined;
  hostname: string | undefined;
}

interface LeaseRecord {
  ip: number;
  mac: string;
  clientId: string | undefined;
  state: LeaseState;
  expiresAt: number;
  hostname: string | undefined;
}

type ReplyKind = "offer" | "ack" | "inform" | "nak" | "bootp";

export class DhcpServer {
  private readonly cfg: ResolvedDhcpConfig;
  /** one record per address; bounded by pool size plus static leases */
  private readonly byIp = new Map<number, LeaseRecord>();
  /** pool address → until when it stays out of use after a DECLINE */
  private readonly declined = new Map<number, number>();
  private readonly reserved: Set<number>;
  private readonly malformed = new DropCounters();
  private readonly ignored = new DropCounters();
  private readonly counts = {
    offers: 0,
    acks: 0,
    naks: 0,
    releases: 0,
    declines: 0,
    informs: 0,
    bootp: 0,
    poolExhausted: 0,
  };
  private loadedNeedCap = true;
  /** the save of the message being handled, when it changed the leases (see pendingSave) */
  private lastSave: Promise<boolean> | undefined;
  private lastExhaustedLog = Number.NEGATIVE_INFINITY;
  private readonly warnedOptions = new Set<string>();

  constructor(
    config: DhcpServerConfig,
    private readonly store: LeaseStore,
    private readonly log: Logger,
    /**
     * Who uses `ip` on the LAN now, as the stack has seen (its MAC, "aa:bb:.."), if
     * anyone: an address another MAC uses is neither offered nor ACKed to a client.
     */
    private readonly usedBy: (ip: number) => string | undefined = () => undefined,
  ) {
    this.cfg = resolveDhcpConfig(config);
    this.reserved = new Set([this.cfg.serverAddress, this.cfg.router, ...this.cfg.dns]);
    this.loadLeases();
  }

  /** Answers one request (a UDP payload to port 67). Undefined: nothing to send. */
  handle(msg: Buffer, now: number): DhcpReply | undefined {
    this.lastSave = undefined;
    this.capLoadedLeases(now);
    const d = decodeDhcp(msg);
    if (!d.ok) return this.drop(d.reason);
    const m = d.value;
    if (m.op !== BOOTP_REQUEST) return this.ignore("dhcp-not-request");
    if (m.htype !== 1 || m.hlen !== 6) return this.drop("dhcp-not-ethernet");
    const chaddr = m.chaddr.subarray(0, 6);
    if (isMulticastMac(chaddr) || chaddr.every((x) => x === 0)) return this.drop("dhcp-bad-chaddr");
    if (m.options.has(DhcpOption.MESSAGE_TYPE) && m.options.get(DhcpOption.MESSAGE_TYPE)?.length !== 1) {
      return this.drop("dhcp-bad-message-type");
    }
    const c = clientOf(m, chaddr);
    const type = dhcpMessageType(m);
    switch (type) {
      case undefined:
        return this.onBootp(m, c, now);
      case DhcpMessageType.DISCOVER:
        return this.onDiscover(m, c, now);
      case DhcpMessageType.REQUEST:
        return this.onRequest(m, c, now);
      case DhcpMessageType.RELEASE:
        return this.onRelease(m, c, now);
      case DhcpMessageType.DECLINE:
        return this.onDecline(m, c, now);
      case DhcpMessageType.INFORM:
        return this.onInform(m, c);
      default:
        return this.ignore("dhcp-unexpected-type");
    }
  }

  /**
   * When the message just handled changed the leases and the store writes later: a
   * promise that settles once that change is durable (true) or its write failed
   * (false). The reply should go out only then, so that a crash never forgets a lease
   * a client was given; a failed write is logged by the store and the reply goes out
   * all the same (the server serves from memory).
   */
  pendingSave(): Promise<boolean> | undefined {
    return this.lastSave;
  }

  /** Settles when the lease saves started so far are done (written or failed). */
  flush(): Promise<void> {
    return this.store.flush?.() ?? Promise.resolve();
  }

  /** Counts something a client asked for that the caller (not this server) turned down. */
  countIgnored(reason: string): void {
    this.ignored.drop(reason);
  }

  stats(): DhcpStats {
    return {
      ...this.counts,
      saveFailures: this.store.failures?.() ?? 0,
      malformed: this.malformed.toJSON(),
      ignored: this.ignored.toJSON(),
    };
  }

  /** Every remembered lease, ordered by address. */
  leases(now: number): DhcpLeaseInfo[] {
    return [...this.byIp.values()]
      .sort((a, b) => a.ip - b.ip)
      .map((r) => {
        const l = toLease(r);
        const expired = (r.state === "bound" || r.state === "offered") && r.expiresAt <= now;
        return {
          ...l,
          state: expired ? "expired" : l.state,
          static: this.cfg.staticByIp.get(r.ip) === r.mac,
        };
      });
  }

  // ---- message handlers ----------------------------------------------------------

  private onDiscover(m: DhcpMessage, c: Client, now: number): DhcpReply | undefined {
    const ip = this.allocate(c, optionIpv4(m, DhcpOption.REQUESTED_ADDRESS), now);
    if (ip === undefined) return this.exhausted(c, now);
    const r = this.byIp.get(ip);
    const holds = r !== undefined && this.owns(r, c) && this.active(r, now) && r.state !== "offered";
    // a client that already holds the address keeps its lease; others get it reserved
    if (!holds) this.bind(ip, c, "offered", now + this.cfg.offerHoldMs);
    this.counts.offers++;
    this.log.debug("dhcp offer", { mac: c.mac, ip: ipv4ToString(ip) });
    return this.reply(m, "offer", ip);
  }

  private onRequest(m: DhcpMessage, c: Client, now: number): DhcpReply | undefined {
    const serverId = optionIpv4(m, DhcpOption.SERVER_ID);
    const requested = optionIpv4(m, DhcpOption.REQUESTED_ADDRESS);
    if (serverId !== undefined && serverId !== this.cfg.serverAddress) {
      // the client took another server's offer: free ours now rather than at hold end
      const r = this.findClientRecord(c, now);
      if (r && r.state === "offered") r.expiresAt = now;
      return this.ignore("dhcp-other-server");
    }
    let ip: number | undefined;
    if (serverId !== undefined) {
      // SELECTING: option 50 is required; ciaddr accepted from lax clients
      ip = requested ?? (m.ciaddr !== 0 ? m.ciaddr : undefined);
      if (ip === undefined) return this.drop("dhcp-request-no-address");
    } else if (requested !== undefined) {
      ip = requested; // INIT-REBOOT
    } else if (m.ciaddr !== 0) {
      ip = m.ciaddr; // RENEWING (unicast) or REBINDING (broadcast): handled alike
    } else {
      ip = this.allocate(c, undefined, now);
      if (ip === undefined) return this.exhausted(c, now);
    }
    if (!this.canAssign(ip, c, now)) {
      this.counts.naks++;
      this.log.debug("dhcp nak", { mac: c.mac, ip: ipv4ToString(ip) });
      return this.reply(m, "nak", 0);
    }
    const before = this.byIp.get(ip);
    const fresh = !(before && this.owns(before, c) && before.state === "bound" && this.active(before, now));
    this.bind(ip, c, "bound", now + this.cfg.leaseTime * 1000);
    this.save();
    this.counts.acks++;
    if (fresh) this.log.info("dhcp lease", { mac: c.mac, ip: ipv4ToString(ip), hostname: c.hostname });
    return this.reply(m, "ack", ip);
  }

  private onRelease(m: DhcpMessage, c: Client, now: number): undefined {
    const serverId = optionIpv4(m, DhcpOption.SERVER_ID);
    if (serverId !== undefined && serverId !== this.cfg.serverAddress)
      return this.ignore("dhcp-other-server");
    this.counts.releases++;
    const r = this.byIp.get(m.ciaddr);
    if (r && this.owns(r, c) && r.state !== "released") {
      r.state = "released";
      r.expiresAt = now;
      this.save();
      this.log.info("dhcp release", { mac: c.mac, ip: ipv4ToString(r.ip) });
    }
    return undefined;
  }

  private onDecline(m: DhcpMessage, c: Client, now: number): undefined {
    const serverId = optionIpv4(m, DhcpOption.SERVER_ID);
    if (serverId !== undefined && serverId !== this.cfg.serverAddress)
      return this.ignore("dhcp-other-server");
    const ip = optionIpv4(m, DhcpOption.REQUESTED_ADDRESS);
    if (ip === undefined) return this.drop("dhcp-decline-no-address");
    this.counts.declines++;
    const r = this.byIp.get(ip);
    // only the holder of an address, or anyone for a free one, can take it out of use
    if (r && !this.owns(r, c) && this.active(r, now)) return undefined;
    if (r) this.byIp.delete(ip);
    if (this.inPool(ip) && !this.cfg.staticByIp.has(ip)) this.declined.set(ip, now + this.cfg.declineHoldMs);
    this.save();
    this.log.warn("dhcp decline: address in use by someone else", { mac: c.mac, ip: ipv4ToString(ip) });
    return undefined;
  }

  private onInform(m: DhcpMessage, c: Client): DhcpReply {
    this.counts.informs++;
    this.log.debug("dhcp inform", { mac: c.mac, ciaddr: ipv4ToString(m.ciaddr) });
    return this.reply(m, "inform", 0);
  }

  private onBootp(m: DhcpMessage, c: Client, now: number): DhcpReply | undefined {
    // RFC 951: a client that fills in ciaddr knows its address; keep it when it can be its
    const known = m.ciaddr !== 0 && this.canAssign(m.ciaddr, c, now) ? m.ciaddr : undefined;
    const ip = known ?? this.allocate(c, undefined, now);
    if (ip === undefined) return this.exhausted(c, now);
    const r = this.byIp.get(ip);
    if (!(r && this.owns(r, c) && r.state === "bootp")) {
      this.bind(ip, c, "bootp", now);
      this.save();
      this.log.info("bootp address", { mac: c.mac, ip: ipv4ToString(ip) });
    }
    this.counts.bootp++;
    return this.reply(m, "bootp", ip);
  }

  // ---- the address table ---------------------------------------------------------

  private owns(r: LeaseRecord, c: Client): boolean {
    if (r.mac !== c.mac) return false;
    return r.clientId === undefined || c.clientId === undefined || r.clientId === c.clientId;
  }

  private active(r: LeaseRecord, now: number): boolean {
    return r.state === "bootp" || ((r.state === "bound" || r.state === "offered") && r.expiresAt > now);
  }

  private inPool(ip: number): boolean {
    const i = ip - this.cfg.poolStart;
    return i >= 0 && i < this.cfg.poolSize;
  }

  /** Could `ip` be (or stay) this client's address right now? */
  private canAssign(ip: number, c: Client, now: number): boolean {
    const staticOwner = this.cfg.staticByIp.get(ip);
    if (staticOwner !== undefined) return staticOwner === c.mac;
    const mine = this.cfg.staticByMac.get(c.mac);
    if (mine) return mine.ip === ip;
    if (!this.inPool(ip) || this.reserved.has(ip)) return false;
    const held = this.declined.get(ip);
    if (held !== undefined) {
      if (held > now) return false;
      this.declined.delete(ip);
    }
    const r = this.byIp.get(ip);
    if (r && this.active(r, now) && !this.owns(r, c)) return false;
    const user = this.usedBy(ip);
    return user === undefined || user === c.mac;
  }

  /** The client's current lease if it has one, else its most recent past one. */
  private findClientRecord(c: Client, now: number): LeaseRecord | undefined {
    let best: LeaseRecord | undefined;
    for (const r of this.byIp.values()) {
      if (!this.owns(r, c)) continue;
      if (this.active(r, now)) return r;
      if (!best || r.expiresAt > best.expiresAt) best = r;
    }
    return best;
  }

  private allocate(c: Client, requested: number | undefined, now: number): number | undefined {
    const fixed = this.cfg.staticByMac.get(c.mac);
    if (fixed) return fixed.ip;
    const prior = this.findClientRecord(c, now);
    if (prior && this.canAssign(prior.ip, c, now)) return prior.ip;
    if (requested !== undefined && this.canAssign(requested, c, now)) return requested;
    let oldest: LeaseRecord | undefined;
    for (let i = 0; i < this.cfg.poolSize; i++) {
      const ip = (this.cfg.poolStart + i) >>> 0;
      if (!this.canAssign(ip, c, now)) continue;
      const r = this.byIp.get(ip);
      if (!r) return ip;
      if (!oldest || r.expiresAt < oldest.expiresAt) oldest = r;
    }
    return oldest?.ip;
  }

  /** Gives `ip` to the client; the client's other addresses are forgotten. */
  private bind(ip: number, c: Client, state: LeaseState, expiresAt: number): void {
    const previous = this.byIp.get(ip);
    for (const r of this.byIp.values()) {
      if (r.ip !== ip && this.owns(r, c)) this.byIp.delete(r.ip);
    }
    // what the client left out this time (some clients send option 61 or 12 only
    // sometimes) is kept from its earlier lease
    const same = previous !== undefined && this.owns(previous, c) ? previous : undefined;
    this.byIp.set(ip, {
      ip,
      mac: c.mac,
      clientId: c.clientId ?? same?.clientId,
      state,
      expiresAt,
      hostname: c.hostname ?? same?.hostname,
    });
  }

  private exhausted(c: Client, now: number): undefined {
    this.counts.poolExhausted++;
    if (now - this.lastExhaustedLog >= EXHAUSTED_LOG_INTERVAL_MS) {
      this.lastExhaustedLog = now;
      this.log.warn("dhcp pool exhausted, no address offered", {
        mac: c.mac,
        pool: `${ipv4ToString(this.cfg.poolStart)}+${this.cfg.poolSize}`,
        times: this.counts.poolExhausted,
      });
    }
    return undefined;
  }

  private drop(reason: string): undefined {
    this.malformed.drop(reason);
    return undefined;
  }

  private ignore(reason: string): undefined {
    this.ignored.drop(reason);
    return undefined;
  }

  // ---- persistence ---------------------------------------------------------------

  private loadLeases(): void {
    let loaded: Lease[];
    try {
      loaded = this.store.load();
    } catch (e) {
      this.log.warn("cannot load DHCP leases, starting empty", { error: String(e) });
      return;
    }
    let skipped = 0;
    for (const l of loaded) {
      const ip = parseIpv4(l.ip);
      const staticOwner = ip === undefined ? undefined : this.cfg.staticByIp.get(ip);
      const usable =
        ip !== undefined &&
        (staticOwner !== undefined
          ? staticOwner === l.mac
          : this.inPool(ip) && !this.reserved.has(ip) && !this.cfg.staticByMac.has(l.mac));
      if (!usable) {
        skipped++;
        continue;
      }
      const old = this.byIp.get(ip);
      if (old && old.expiresAt >= l.expiresAt) continue;
      this.byIp.set(ip, {
        ip,
        mac: l.mac,
        clientId: l.clientId,
        state: l.state,
        expiresAt: l.expiresAt,
        hostname: l.hostname,
      });
    }
    if (skipped > 0) this.log.info("skipped stored DHCP leases outside the pool", { skipped });
  }

  private capLoadedLeases(now: number): void {
    if (!this.loadedNeedCap) return;
    this.loadedNeedCap = false;
    const cap = now + this.cfg.leaseTime * 1000;
    for (const r of this.byIp.values()) {
      if (r.state !== "bootp" && r.expiresAt > cap) r.expiresAt = cap;
    }
  }

  private save(): void {
    try {
      this.lastSave = this.store.save([...this.byIp.values()].map(toLease));
    } catch (e) {
      this.log.error("cannot save DHCP leases", { error: String(e) });
    }
  }

  // ---- replies -------------------------------------------------------------------

  private reply(req: DhcpMessage, kind: ReplyKind, yiaddr: number): DhcpReply {
    const cfg = this.cfg;
    const nak = kind === "nak";
    const bootp = kind === "bootp";
    const tftpName = cfg.tftpServerName;
    const bootfile = cfg.bootfile;
    const fileFits = bootfile !== undefined && Buffer.byteLength(bootfile, "latin1") < DHCP_FILE_LENGTH;
    const msg: DhcpMessage = {
      op: BOOTP_REPLY,
      htype: req.htype,
      hlen: req.hlen,
      hops: 0,
      xid: req.xid,
      secs: 0,
      flags: req.flags & DHCP_FLAG_BROADCAST,
      ciaddr: kind === "ack" || kind === "inform" || bootp ? req.ciaddr : 0,
      yiaddr,
      siaddr: nak ? 0 : cfg.nextServer,
      giaddr: req.giaddr,
      chaddr: Buffer.from(req.chaddr),
      sname: !nak && tftpName !== undefined && fitsSname(tftpName) ? optString(tftpName) : Buffer.alloc(0),
      file: !nak && fileFits ? optString(bootfile) : Buffer.alloc(0),
      cookie: true,
      options: new Map(),
    };

    const opts: [number, Buffer][] = [];
    const add = (code: number, value: Buffer) => opts.push([code, value]);
    const hostname = cfg.staticByMac.get(macToString(req.chaddr))?.hostname ?? cfg.hostname;
    if (!bootp) {
      const type = kind === "offer" ? DhcpMessageType.OFFER : nak ? DhcpMessageType.NAK : DhcpMessageType.ACK;
      add(DhcpOption.MESSAGE_TYPE, optU8(type));
      add(DhcpOption.SERVER_ID, optIpv4(cfg.serverAddress));
    }
    if (nak) {
      add(DhcpOption.MESSAGE, optString(NAK_MESSAGE));
    } else {
      add(DhcpOption.SUBNET_MASK, optIpv4(cfg.netmask));
      if (!cfg.restricted) {
        add(DhcpOption.ROUTER, optIpv4(cfg.router));
        if (cfg.dns.length > 0) add(DhcpOption.DNS, optIpv4(...cfg.dns));
      }
      if (kind === "offer" || kind === "ack") {
        add(DhcpOption.LEASE_TIME, optU32(cfg.leaseTime));
        add(DhcpOption.RENEWAL_TIME, optU32(Math.floor(cfg.leaseTime / 2)));
        add(DhcpOption.REBINDING_TIME, optU32(Math.floor((cfg.leaseTime * 7) / 8)));
      }
      if (hostname !== undefined) add(DhcpOption.HOSTNAME, optString(hostname));
      if (cfg.domainName !== undefined) add(DhcpOption.DOMAIN_NAME, optString(cfg.domainName));
      if (tftpName !== undefined && !bootp) add(DhcpOption.TFTP_SERVER_NAME, optString(tftpName));
      if (cfg.dnsSearch !== undefined) add(DhcpOption.DOMAIN_SEARCH, cfg.dnsSearch);
      if (bootfile?.startsWith("http://") && !bootp) {
        add(DhcpOption.VENDOR_CLASS, optString(UEFI_HTTP_VENDOR_CLASS));
      }
      if (cfg.mtu !== 1500) add(DhcpOption.MTU, optU16(cfg.mtu));
      if (bootfile !== undefined && (!bootp || !fileFits)) add(DhcpOption.BOOTFILE, optString(bootfile));
    }

    // room for options between the cookie and End
    const room = bootp ? BOOTP_VEND_LENGTH - 4 - 1 : this.maxPayload(req) - OPTIONS_OFFSET - 1;
    let used = 0;
    for (const [code, value] of opts) {
      const size = optionEncodedLength(value.length);
      if (used + size > room) {
        this.warnOnce(`${kind}:${code}`, "DHCP reply too large, option left out", { option: code, kind });
        continue;
      }
      used += size;
      msg.options.set(code, value);
    }
    return { payload: encodeDhcp(msg, BOOTP_MIN_LENGTH), to: this.destination(req, kind, yiaddr) };
  }

  /** The largest DHCP payload the client takes: option 57 (≥ 576), bounded by our MTU. */
  private maxPayload(req: DhcpMessage): number {
    const asked = optionU16(req, DhcpOption.MAX_MESSAGE_SIZE);
    if (asked === undefined || asked < 576) return DEFAULT_MAX_PAYLOAD;
    return Math.max(DEFAULT_MAX_PAYLOAD, Math.min(asked, this.cfg.mtu) - 28);
  }

  private destination(req: DhcpMessage, kind: ReplyKind, yiaddr: number): DhcpReply["to"] {
    if (this.cfg.replyMode === "broadcast" || kind === "nak") return "broadcast";
    // RFC 2131 4.1 unicasts to ciaddr whatever the flag says; a client that sets the
    // flag cannot receive unicast yet, so the flag wins here
    if (req.flags & DHCP_FLAG_BROADCAST) return "broadcast";
    const mac = Buffer.from(req.chaddr.subarray(0, 6));
    if (req.ciaddr !== 0) return { ip: req.ciaddr, mac };
    if (yiaddr === 0) return "broadcast";
    return { ip: yiaddr, mac };
  }

  private warnOnce(key: string, msg: string, fields: Record<string, unknown>): void {
    if (this.warnedOptions.has(key)) return;
    this.warnedOptions.add(key);
    this.log.warn(msg, fields);
  }
}

function clientOf(m: DhcpMessage, chaddr: Buffer): Client {
  const id = m.options.get(DhcpOption.CLIENT_ID);
  return {
    mac: macToString(chaddr),
    clientId: id && id.length >= 2 && id.length <= 255 ? id.toString("hex") : undefined,
    hostname: sanitizeHostname(m.options.get(DhcpOption.HOSTNAME)),
  };
}

function toLease(r: LeaseRecord): Lease {
  const l: Lease = { mac: r.mac, ip: ipv4ToString(r.ip), state: r.state, expiresAt: r.expiresAt };
  if (r.clientId !== undefined) l.clientId = r.clientId;
  if (r.hostname !== undefined) l.hostname = r.hostname;
  return l;
}
