/**
 * The DHCPv6 server of one user stack, sans-I/O: a client message, the MAC it came
 * from and the time in; a reply payload out (sent by the caller from port 547 back to
 * the client's source address and port, at the MAC it came from).
 *
 * Theory of operation
 * - Stateless (RFC 8415 18.2.6, the "O" flag of the RA): INFORMATION-REQUEST → REPLY with
 *   the DNS servers (23), the domain search list (24) and, when asked for in the ORO
 *   and configured (tftp=/bootfile= netboot), the boot file URL (59, RFC 5970). Every
 *   reply carries our Server Identifier (a DUID-LL of the gateway's MAC): libslirp's
 *   has none, and ISC dhclient rejects such replies.
 * - Stateful (the "M" flag), IA_NA only: SOLICIT → ADVERTISE (preference 255, so the
 *   client takes it at once), or REPLY at once when the client asks for rapid commit
 *   (option 14). REQUEST/RENEW/REBIND → REPLY binding one address per IA_NA, valid and
 *   preferred for `leaseTime`, T1 = ½, T2 = ⅘ of it. RELEASE and DECLINE → REPLY with
 *   status Success (a declined address stays out of use for `declineHoldTime`);
 *   CONFIRM → Success when every address is in the prefix, else NotOnLink.
 *   IA_TA and IA_PD get NoAddrsAvail / NoPrefixAvail inside the IA. With
 *   `stateful: false` every IA_NA gets NoAddrsAvail.
 * - Whose address: a lease belongs to (MAC, DUID, IAID). The MAC is the hub's word;
 *   DUID and IAID are the guest's. A client gets, in this order: the address its IA
 *   holds or last held while nobody else took it; the address a former IA of the same
 *   MAC left free; an address it asks for in the IA when it can be its; the first
 *   never-used pool address; the free one that ended longest ago. Never an address
 *   of the gateway, nor one another guest uses (`usedBy`: the stack's neighbours),
 *   nor one declined. One MAC holds at most `maxPerMac` (8) leases: a guest inventing
 *   DUIDs recycles its own addresses, not the pool.
 * - Guest bytes never throw: malformed messages are dropped and counted by reason
 *   (`malformed`), well-formed ones not for us (another server id, a server message)
 *   counted in `ignored`.
 * - Leases are saved through the injected store after binds, renewals, releases and
 *   declines (not after ADVERTISE); `pendingSave()` lets the caller send the REPLY only
 *   once the change is durable, as for DHCPv4. Loaded leases that end more than one
 *   lease time after the first `now` are capped (written under another clock).
 * Not done: relays, IA_TA, prefix delegation, reconfigure, the Server Unicast option
 * (clients always multicast, which is also all a user network needs), FQDN (39).
 */
import type { Logger } from "../../log.js";
import { DropCounters } from "../../stack/drop-counters.js";
import { isMulticastMac, macToString } from "../../stack/wire/addr.js";
import { ipv6InPrefix, ipv6ToString, parseIpv6 } from "../../stack/wire/ipv6-addr.js";
import {
  countOption,
  type Dhcpv6Message,
  type Dhcpv6Opt,
  Dhcpv6Option,
  Dhcpv6Status,
  Dhcpv6Type,
  decodeDhcpv6,
  decodeIaAddr,
  decodeIaNa,
  decodeOro,
  encodeDhcpv6,
  encodeIaAddr,
  encodeIaNa,
  encodeNameList,
  findOption,
  type IaNa,
  statusOption,
  u8,
  u32,
} from "./dhcpv6-codec.js";
import type { Lease6, Lease6State, Lease6Store } from "./dhcpv6-lease.js";

export interface Dhcpv6ServerConfig {
  /** our DUID (option 2) */
  serverDuid: Buffer;
  /** the on-link prefix (16 bytes) and its length: CONFIRM's and the pool's */
  prefix: Buffer;
  prefixLength: number;
  /** IA_NA addresses are handed out (the RA's M flag); false: stateless only */
  stateful: boolean;
  /** first pool address (16 bytes, inside the prefix) and how many */
  poolStart: Buffer;
  poolSize: number;
  /** addresses never handed out (the gateway's) */
  reserved: Buffer[];
  /** option 23, in order; empty leaves it out */
  dns: Buffer[];
  /** option 24 */
  dnsSearch?: string[];
  /** option 59, e.g. "tftp://[fec0::2]/pxelinux.0" */
  bootfileUrl?: string;
  /** valid and preferred lifetime, seconds (86400) */
  leaseTime?: number;
  /** seconds an advertised address stays reserved for the client (60) */
  offerHoldTime?: number;
  /** seconds a declined address stays out of use (600) */
  declineHoldTime?: number;
  /** answer a SOLICIT with rapid commit by a REPLY (true) */
  rapidCommit?: boolean;
  /** leases one MAC holds at once (8) */
  maxPerMac?: number;
}

export interface Dhcpv6Stats {
  solicits: number;
  advertises: number;
  requests: number;
  renews: number;
  rebinds: number;
  releases: number;
  declines: number;
  confirms: number;
  informationRequests: number;
  replies: number;
  noAddrsAvail: number;
  saveFailures: number;
  malformed: Record<string, number>;
  ignored: Record<string, number>;
}

export interface Dhcpv6LeaseInfo extends Omit<Lease6, "state"> {
  state: Lease6State | "expired";
}

const DEFAULT_LEASE_TIME = 86400;
const MAX_POOL = 65536;

interface Client {
  mac: string;
  duid: string;
  duidBytes: Buffer;
}

interface Record6 {
  key: string;
  addr: Buffer;
  mac: string;
  duid: string;
  iaid: number;
  state: Lease6State;
  expiresAt: number;
}

type Kind = "advertise" | "reply";

const hexKey = (a: Buffer): string => a.toString("hex");

export class Dhcpv6Server {
  private readonly leaseTime: number;
  private readonly offerHoldMs: number;
  private readonly declineHoldMs: number;
  private readonly rapidCommit: boolean;
  private readonly maxPerMac: number;
  private readonly poolBase: Buffer;
  private readonly poolLow: number;
  private readonly reserved: Set<string>;
  private readonly dnsSearch: Buffer | undefined;
  private readonly byKey = new Map<string, Record6>();
  private readonly declined = new Map<string, number>();
  private readonly malformed = new DropCounters();
  private readonly ignored = new DropCounters();
  private readonly counts = {
    solicits: 0,
    advertises: 0,
    requests: 0,
    renews: 0,
    rebinds: 0,
    releases: 0,
    declines: 0,
    confirms: 0,
    informationRequests: 0,
    replies: 0,
    noAddrsAvail: 0,
  };
  private loadedNeedCap = true;
  private lastSave: Promise<boolean> | undefined;

  constructor(
    private readonly cfg: Dhcpv6ServerConfig,
    private readonly store: Lease6Store,
    private readonly log: Logger,
    /** who uses `addr` on the LAN now (its MAC "aa:bb:..."), as the stack has seen */
    private readonly usedBy: (addr: Buffer) => string | undefined = () => undefined,
  ) {
    const bad = (what: string) => {
      throw new Error(`dhcpv6: ${what}`);
    };
    if (cfg.prefix.length !== 16 || cfg.poolStart.length !== 16) bad("addresses are 16 bytes");
    if (!Number.isInteger(cfg.prefixLength) || cfg.prefixLength < 1 || cfg.prefixLength > 128)
      bad(`bad prefix length ${cfg.prefixLength}`);
    if (!Number.isInteger(cfg.poolSize) || cfg.poolSize < 1 || cfg.poolSize > MAX_POOL)
      bad(`pool size must be 1..${MAX_POOL}`);
    this.poolBase = Buffer.from(cfg.poolStart);
    this.poolLow = cfg.poolStart.readUInt32BE(12);
    if (this.poolLow + cfg.poolSize - 1 > 0xffffffff) bad("the pool wraps its last 32 bits");
    if (
      !ipv6InPrefix(cfg.poolStart, cfg.prefix, cfg.prefixLength) ||
      !ipv6InPrefix(this.poolAt(cfg.poolSize - 1), cfg.prefix, cfg.prefixLength)
    )
      bad("the pool leaves the prefix");
    this.leaseTime = seconds("lease time", cfg.leaseTime, DEFAULT_LEASE_TIME);
    this.offerHoldMs = 1000 * seconds("offer hold time", cfg.offerHoldTime, 60);
    this.declineHoldMs = 1000 * seconds("decline hold time", cfg.declineHoldTime, 600);
    this.rapidCommit = cfg.rapidCommit ?? true;
    this.maxPerMac = cfg.maxPerMac ?? 8;
    this.reserved = new Set(cfg.reserved.map(hexKey));
    if (cfg.dnsSearch && cfg.dnsSearch.length > 0) {
      const r = encodeNameList(cfg.dnsSearch);
      if (!r.ok) bad(`dns search ${cfg.dnsSearch.join(",")}: ${r.reason}`);
      else this.dnsSearch = r.value;
    }
    this.loadLeases();
  }

  /** Answers one client message (a UDP payload to port 547); undefined: nothing to send. */
  handle(msg: Buffer, fromMac: Buffer, now: number): Buffer | undefined {
    this.lastSave = undefined;
    this.capLoadedLeases(now);
    const d = decodeDhcpv6(msg);
    if (!d.ok) return this.drop(d.reason);
    const m = d.value;
    if (fromMac.length < 6 || isMulticastMac(fromMac)) return this.drop("dhcpv6-bad-source-mac");
    const clientId = findOption(m.options, Dhcpv6Option.CLIENT_ID);
    const serverId = findOption(m.options, Dhcpv6Option.SERVER_ID);
    if (
      countOption(m.options, Dhcpv6Option.CLIENT_ID) > 1 ||
      countOption(m.options, Dhcpv6Option.SERVER_ID) > 1
    )
      return this.drop("dhcpv6-duplicate-id");
    if (clientId !== undefined && (clientId.length < 2 || clientId.length > 130))
      return this.drop("dhcpv6-bad-client-id");
    const ours = serverId === undefined ? undefined : serverId.equals(this.cfg.serverDuid);
    const c: Client | undefined =
      clientId === undefined
        ? undefined
        : { mac: macToString(fromMac), duid: clientId.toString("hex"), duidBytes: clientId };
    switch (m.type) {
      case Dhcpv6Type.SOLICIT:
        if (!c) return this.drop("dhcpv6-no-client-id");
        if (serverId !== undefined) return this.drop("dhcpv6-solicit-with-server-id");
        this.counts.solicits++;
        return this.onSolicit(m, c, now);
      case Dhcpv6Type.REQUEST:
      case Dhcpv6Type.RENEW:
        if (!c) return this.drop("dhcpv6-no-client-id");
        if (serverId === undefined) return this.drop("dhcpv6-no-server-id");
        if (!ours) return this.ignore("dhcpv6-other-server");
        if (m.type === Dhcpv6Type.REQUEST) this.counts.requests++;
        else this.counts.renews++;
        return this.onBind(m, c, now, m.type === Dhcpv6Type.REQUEST ? "request" : "renew");
      case Dhcpv6Type.REBIND:
        if (!c) return this.drop("dhcpv6-no-client-id");
        if (serverId !== undefined) return this.drop("dhcpv6-rebind-with-server-id");
        this.counts.rebinds++;
        return this.onBind(m, c, now, "rebind");
      case Dhcpv6Type.RELEASE:
      case Dhcpv6Type.DECLINE:
        if (!c) return this.drop("dhcpv6-no-client-id");
        if (serverId === undefined) return this.drop("dhcpv6-no-server-id");
        if (!ours) return this.ignore("dhcpv6-other-server");
        return this.onGiveBack(m, c, now, m.type === Dhcpv6Type.DECLINE);
      case Dhcpv6Type.CONFIRM:
        if (!c) return this.drop("dhcpv6-no-client-id");
        if (serverId !== undefined) return this.drop("dhcpv6-confirm-with-server-id");
        this.counts.confirms++;
        return this.onConfirm(m);
      case Dhcpv6Type.INFORMATION_REQUEST:
        if (serverId !== undefined && !ours) return this.ignore("dhcpv6-other-server");
        if (countOption(m.options, Dhcpv6Option.IA_NA) + countOption(m.options, Dhcpv6Option.IA_TA) > 0)
          return this.drop("dhcpv6-information-request-with-ia");
        this.counts.informationRequests++;
        return this.reply(m, "reply", clientId, []);
      default:
        return this.ignore("dhcpv6-not-a-client-message");
    }
  }

  pendingSave(): Promise<boolean> | undefined {
    return this.lastSave;
  }

  flush(): Promise<void> {
    return this.store.flush?.() ?? Promise.resolve();
  }

  stats(): Dhcpv6Stats {
    return {
      ...this.counts,
      saveFailures: this.store.failures?.() ?? 0,
      malformed: this.malformed.toJSON(),
      ignored: this.ignored.toJSON(),
    };
  }

  /** Every remembered lease, ordered by address. */
  leases(now: number): Dhcpv6LeaseInfo[] {
    return [...this.byKey.values()]
      .sort((a, b) => Buffer.compare(a.addr, b.addr))
      .map((r) => {
        const l = toLease(r);
        const expired = (r.state === "bound" || r.state === "offered") && r.expiresAt <= now;
        return { ...l, state: expired ? "expired" : l.state };
      });
  }

  // ---- message handlers ----------------------------------------------------------

  private onSolicit(m: Dhcpv6Message, c: Client, now: number): Buffer | undefined {
    const rapid = this.rapidCommit && findOption(m.options, Dhcpv6Option.RAPID_COMMIT) !== undefined;
    const ias: Dhcpv6Opt[] = [];
    for (const o of m.options) {
      if (o.code === Dhcpv6Option.IA_NA) {
        const ia = decodeIaNa(o.data);
        if (!ia.ok) return this.drop(ia.reason);
        const addr = this.allocate(c, ia.value, now);
        if (addr === undefined) {
          ias.push(this.iaStatus(ia.value.iaid, Dhcpv6Status.NO_ADDRS_AVAIL, "no addresses available"));
          continue;
        }
        this.bind(addr, c, ia.value.iaid, rapid ? "bound" : "offered", now, rapid);
        ias.push(this.iaWith(ia.value.iaid, addr));
      } else if (o.code === Dhcpv6Option.IA_TA || o.code === Dhcpv6Option.IA_PD) {
        ias.push(otherIa(o));
      }
    }
    if (rapid) {
      if (ias.some((o) => o.code === Dhcpv6Option.IA_NA)) this.save();
      return this.reply(m, "reply", c.duidBytes, [
        { code: Dhcpv6Option.RAPID_COMMIT, data: Buffer.alloc(0) },
        ...ias,
      ]);
    }
    this.counts.advertises++;
    return this.reply(m, "advertise", c.duidBytes, [
      { code: Dhcpv6Option.PREFERENCE, data: u8(255) },
      ...ias,
    ]);
  }

  private onBind(
    m: Dhcpv6Message,
    c: Client,
    now: number,
    how: "request" | "renew" | "rebind",
  ): Buffer | undefined {
    const ias: Dhcpv6Opt[] = [];
    let changed = false;
    for (const o of m.options) {
      if (o.code !== Dhcpv6Option.IA_NA) {
        if (o.code === Dhcpv6Option.IA_TA || o.code === Dhcpv6Option.IA_PD) ias.push(otherIa(o));
        continue;
      }
      const ia = decodeIaNa(o.data);
      if (!ia.ok) return this.drop(ia.reason);
      const asked = iaAddresses(ia.value);
      if (how !== "request") {
        // RENEW/REBIND: the addresses the IA holds stay its own when they can be
        const keep = asked.find((a) => this.canAssign(a, c, ia.value.iaid, now));
        if (keep !== undefined) {
          this.bind(keep, c, ia.value.iaid, "bound", now, true);
          changed = true;
          ias.push(
            this.iaWith(
              ia.value.iaid,
              keep,
              asked.filter((a) => !a.equals(keep)),
            ),
          );
          continue;
        }
        if (how === "renew" && asked.length > 0 && asked.every((a) => !this.inPrefix(a))) {
          ias.push(this.iaStatus(ia.value.iaid, Dhcpv6Status.NO_BINDING, "no binding for this IA"));
          continue;
        }
      }
      const addr = this.allocate(c, ia.value, now);
      if (addr === undefined) {
        ias.push(this.iaStatus(ia.value.iaid, Dhcpv6Status.NO_ADDRS_AVAIL, "no addresses available"));
        continue;
      }
      this.bind(addr, c, ia.value.iaid, "bound", now, true);
      changed = true;
      // addresses the client asked for that it cannot have: lifetimes 0 (RFC 8415 18.3.4)
      ias.push(
        this.iaWith(
          ia.value.iaid,
          addr,
          asked.filter((a) => !a.equals(addr)),
        ),
      );
    }
    if (changed) this.save();
    return this.reply(m, "reply", c.duidBytes, ias);
  }

  private onGiveBack(m: Dhcpv6Message, c: Client, now: number, decline: boolean): Buffer | undefined {
    if (decline) this.counts.declines++;
    else this.counts.releases++;
    let changed = false;
    for (const o of m.options) {
      if (o.code !== Dhcpv6Option.IA_NA) continue;
      const ia = decodeIaNa(o.data);
      if (!ia.ok) return this.drop(ia.reason);
      for (const a of iaAddresses(ia.value)) {
        const r = this.byKey.get(hexKey(a));
        if (!r || !this.owns(r, c, ia.value.iaid)) continue;
        changed = true;
        if (decline) {
          this.byKey.delete(r.key);
          this.declined.set(r.key, now + this.declineHoldMs);
          this.log.warn("dhcpv6 decline: address in use by someone else", {
            mac: c.mac,
            ip: ipv6ToString(a),
          });
        } else {
          r.state = "released";
          r.expiresAt = now;
          this.log.info("dhcpv6 release", { mac: c.mac, ip: ipv6ToString(a) });
        }
      }
    }
    if (changed) this.save();
    return this.reply(
      m,
      "reply",
      c.duidBytes,
      [statusOption(Dhcpv6Status.SUCCESS, decline ? "declined" : "released")],
      true,
    );
  }

  private onConfirm(m: Dhcpv6Message): Buffer | undefined {
    let any = false;
    for (const o of m.options) {
      if (o.code !== Dhcpv6Option.IA_NA) continue;
      const ia = decodeIaNa(o.data);
      if (!ia.ok) return this.drop(ia.reason);
      for (const a of iaAddresses(ia.value)) {
        any = true;
        if (!this.inPrefix(a))
          return this.reply(
            m,
            "reply",
            findOption(m.options, Dhcpv6Option.CLIENT_ID),
            [statusOption(Dhcpv6Status.NOT_ON_LINK, "not on link")],
            true,
          );
      }
    }
    // RFC 8415 18.3.3: no addresses, no reply
    if (!any) return this.ignore("dhcpv6-confirm-without-addresses");
    return this.reply(
      m,
      "reply",
      findOption(m.options, Dhcpv6Option.CLIENT_ID),
      [statusOption(Dhcpv6Status.SUCCESS, "on link")],
      true,
    );
  }

  // ---- the address table ---------------------------------------------------------

  private poolAt(i: number): Buffer {
    const a = Buffer.from(this.poolBase);
    a.writeUInt32BE((this.poolLow + i) >>> 0, 12);
    return a;
  }

  private inPrefix(a: Buffer): boolean {
    return ipv6InPrefix(a, this.cfg.prefix, this.cfg.prefixLength);
  }

  private inPool(a: Buffer): boolean {
    if (!a.subarray(0, 12).equals(this.poolBase.subarray(0, 12))) return false;
    const i = a.readUInt32BE(12) - this.poolLow;
    return i >= 0 && i < this.cfg.poolSize;
  }

  private owns(r: Record6, c: Client, iaid: number): boolean {
    return r.mac === c.mac && r.duid === c.duid && r.iaid === iaid;
  }

  private active(r: Record6, now: number): boolean {
    return (r.state === "bound" || r.state === "offered") && r.expiresAt > now;
  }

  private canAssign(a: Buffer, c: Client, iaid: number, now: number): boolean {
    if (!this.cfg.stateful || a.length !== 16 || !this.inPool(a)) return false;
    const key = hexKey(a);
    if (this.reserved.has(key)) return false;
    const held = this.declined.get(key);
    if (held !== undefined) {
      if (held > now) return false;
      this.declined.delete(key);
    }
    const r = this.byKey.get(key);
    if (r && this.active(r, now) && !this.owns(r, c, iaid)) return false;
    const user = this.usedBy(a);
    return user === undefined || user === c.mac;
  }

  private allocate(c: Client, ia: IaNa, now: number): Buffer | undefined {
    if (!this.cfg.stateful) return undefined;
    let mine: Record6 | undefined;
    let macs: Record6 | undefined;
    for (const r of this.byKey.values()) {
      if (this.owns(r, c, ia.iaid)) {
        if (!mine || r.expiresAt > mine.expiresAt) mine = r;
      } else if (r.mac === c.mac && r.iaid === ia.iaid && !this.active(r, now)) {
        if (!macs || r.expiresAt > macs.expiresAt) macs = r;
      }
    }
    for (const r of [mine, macs]) if (r && this.canAssign(r.addr, c, ia.iaid, now)) return r.addr;
    for (const a of iaAddresses(ia)) if (this.canAssign(a, c, ia.iaid, now)) return Buffer.from(a);
    let oldest: Record6 | undefined;
    for (let i = 0; i < this.cfg.poolSize; i++) {
      const a = this.poolAt(i);
      if (!this.canAssign(a, c, ia.iaid, now)) continue;
      const r = this.byKey.get(hexKey(a));
      if (!r) return a;
      if (!oldest || r.expiresAt < oldest.expiresAt) oldest = r;
    }
    if (oldest) return oldest.addr;
    this.counts.noAddrsAvail++;
    return undefined;
  }

  private bind(addr: Buffer, c: Client, iaid: number, state: Lease6State, now: number, logIt: boolean): void {
    const key = hexKey(addr);
    const before = this.byKey.get(key);
    // the IA's other addresses are forgotten: one address per IA
    for (const r of [...this.byKey.values()])
      if (r.key !== key && this.owns(r, c, iaid)) this.byKey.delete(r.key);
    const fresh = !(
      before &&
      this.owns(before, c, iaid) &&
      before.state === "bound" &&
      this.active(before, now)
    );
    this.byKey.set(key, {
      key,
      addr: Buffer.from(addr),
      mac: c.mac,
      duid: c.duid,
      iaid,
      state,
      expiresAt: now + (state === "offered" ? this.offerHoldMs : this.leaseTime * 1000),
    });
    this.limitPerMac(c.mac, key);
    if (logIt && state === "bound" && fresh)
      this.log.info("dhcpv6 lease", { mac: c.mac, ip: ipv6ToString(addr), iaid });
  }

  /** A MAC over its share loses its oldest-ending leases (never the one just bound). */
  private limitPerMac(mac: string, keep: string): void {
    const mine = [...this.byKey.values()].filter((r) => r.mac === mac && r.key !== keep);
    if (mine.length < this.maxPerMac) return;
    mine.sort((a, b) => a.expiresAt - b.expiresAt);
    for (const r of mine.slice(0, mine.length - this.maxPerMac + 1)) this.byKey.delete(r.key);
    this.ignored.drop("dhcpv6-too-many-leases-per-mac");
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
    let loaded: Lease6[];
    try {
      loaded = this.store.load();
    } catch (e) {
      this.log.warn("cannot load DHCPv6 leases, starting empty", { error: String(e) });
      return;
    }
    let skipped = 0;
    for (const l of loaded) {
      const addr = parseIpv6(l.ip);
      if (!addr || !this.inPool(addr) || this.reserved.has(hexKey(addr))) {
        skipped++;
        continue;
      }
      const key = hexKey(addr);
      const old = this.byKey.get(key);
      if (old && old.expiresAt >= l.expiresAt) continue;
      this.byKey.set(key, {
        key,
        addr,
        mac: l.mac,
        duid: l.duid,
        iaid: l.iaid,
        state: l.state,
        expiresAt: l.expiresAt,
      });
    }
    if (skipped > 0) this.log.info("skipped stored DHCPv6 leases outside the pool", { skipped });
  }

  private capLoadedLeases(now: number): void {
    if (!this.loadedNeedCap) return;
    this.loadedNeedCap = false;
    const cap = now + this.leaseTime * 1000;
    for (const r of this.byKey.values()) if (r.expiresAt > cap) r.expiresAt = cap;
  }

  private save(): void {
    try {
      this.lastSave = this.store.save([...this.byKey.values()].map(toLease));
    } catch (e) {
      this.log.error("cannot save DHCPv6 leases", { error: String(e) });
    }
  }

  // ---- replies -------------------------------------------------------------------

  private iaWith(iaid: number, addr: Buffer, refused: Buffer[] = []): Dhcpv6Opt {
    const lt = this.leaseTime;
    const addrs: Dhcpv6Opt[] = [
      {
        code: Dhcpv6Option.IAADDR,
        data: encodeIaAddr({ address: addr, preferred: lt, valid: lt, options: [] }),
      },
      ...refused
        .filter((a) => a.length === 16)
        .map((a) => ({
          code: Dhcpv6Option.IAADDR,
          data: encodeIaAddr({ address: a, preferred: 0, valid: 0, options: [] }),
        })),
    ];
    return {
      code: Dhcpv6Option.IA_NA,
      data: encodeIaNa({ iaid, t1: Math.floor(lt / 2), t2: Math.floor((lt * 4) / 5), options: addrs }),
    };
  }

  private iaStatus(iaid: number, status: number, message: string): Dhcpv6Opt {
    return {
      code: Dhcpv6Option.IA_NA,
      data: encodeIaNa({ iaid, t1: 0, t2: 0, options: [statusOption(status, message)] }),
    };
  }

  private reply(
    req: Dhcpv6Message,
    kind: Kind,
    clientId: Buffer | undefined,
    body: Dhcpv6Opt[],
    bare = false,
  ): Buffer {
    const options: Dhcpv6Opt[] = [];
    if (clientId !== undefined) options.push({ code: Dhcpv6Option.CLIENT_ID, data: Buffer.from(clientId) });
    options.push({ code: Dhcpv6Option.SERVER_ID, data: this.cfg.serverDuid });
    options.push(...body);
    if (!bare) {
      if (this.cfg.dns.length > 0)
        options.push({ code: Dhcpv6Option.DNS_SERVERS, data: Buffer.concat(this.cfg.dns) });
      if (this.dnsSearch) options.push({ code: Dhcpv6Option.DOMAIN_LIST, data: this.dnsSearch });
      const oro = decodeOro(findOption(req.options, Dhcpv6Option.ORO));
      if (this.cfg.bootfileUrl !== undefined && oro.includes(Dhcpv6Option.BOOTFILE_URL))
        options.push({ code: Dhcpv6Option.BOOTFILE_URL, data: Buffer.from(this.cfg.bootfileUrl, "utf8") });
      if (req.type === Dhcpv6Type.INFORMATION_REQUEST)
        options.push({ code: Dhcpv6Option.INFORMATION_REFRESH_TIME, data: u32(this.leaseTime) });
    }
    if (kind === "reply") this.counts.replies++;
    return encodeDhcpv6({
      type: kind === "advertise" ? Dhcpv6Type.ADVERTISE : Dhcpv6Type.REPLY,
      transactionId: req.transactionId,
      options,
    });
  }
}

function seconds(what: string, v: number | undefined, dflt: number): number {
  const s = v ?? dflt;
  if (!Number.isInteger(s) || s < 1 || s > 0xfffffffe)
    throw new Error(`dhcpv6: ${what} must be 1..4294967294 s`);
  return s;
}

/** The addresses an IA_NA names (its IAADDR options); malformed ones are skipped. */
function iaAddresses(ia: IaNa): Buffer[] {
  const out: Buffer[] = [];
  for (const o of ia.options) {
    if (o.code !== Dhcpv6Option.IAADDR) continue;
    const a = decodeIaAddr(o.data);
    if (a.ok) out.push(a.value.address);
  }
  return out;
}

/** IA_TA / IA_PD: we assign neither; the IA goes back with its status inside. */
function otherIa(o: Dhcpv6Opt): Dhcpv6Opt {
  const headLength = o.code === Dhcpv6Option.IA_TA ? 4 : 12;
  const head = Buffer.alloc(headLength);
  o.data.copy(head, 0, 0, Math.min(4, o.data.length));
  const status =
    o.code === Dhcpv6Option.IA_PD
      ? statusOption(Dhcpv6Status.NO_PREFIX_AVAIL, "no prefix delegation")
      : statusOption(Dhcpv6Status.NO_ADDRS_AVAIL, "no temporary addresses");
  const st = Buffer.alloc(4 + status.data.length);
  st.writeUInt16BE(status.code, 0);
  st.writeUInt16BE(status.data.length, 2);
  status.data.copy(st, 4);
  return { code: o.code, data: Buffer.concat([head, st]) };
}

function toLease(r: Record6): Lease6 {
  return {
    mac: r.mac,
    duid: r.duid,
    iaid: r.iaid,
    ip: ipv6ToString(r.addr),
    state: r.state,
    expiresAt: r.expiresAt,
  };
}
