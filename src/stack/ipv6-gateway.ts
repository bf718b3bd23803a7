/**
 * The gateway on IPv6: what the user stack does with Ethernet frames of type 0x86dd.
 * Sans-I/O like the rest of the stack: the stack hands it each IPv6 payload with the
 * guest id, time and checksum trust of the frame; replies go into the stack's output
 * list, frames made outside `input` (timers, the NAT's replies) through `emit`.
 *
 * Addresses (Ipv6StackConfig): the gateway owns its link-local address (fe80::2, as
 * libslirp), the host address (prefix::2) and the DNS address (prefix::3), each with
 * libslirp's MAC (52:56 + the address's last four bytes), and listens on ff02::1,
 * ff02::2, the solicited-node groups of its addresses and ff02::1:2 (DHCPv6 servers).
 *
 * What it does:
 * - NDP (RFC 4861): answers neighbour solicitations for its addresses (a solicited,
 *   override NA with the router flag and the address's MAC); defends its addresses
 *   against a guest's DAD probe with an NA to ff02::1. Every NDP message must arrive
 *   with hop limit 255 ("ndp-bad-hop-limit").
 * - Router advertisements: an RS is answered at once with an RA (to ff02::1 at the IP
 *   level but in a frame to the soliciting guest's MAC only, so a guest sending RSes
 *   in a loop floods nobody); a guest seen for the first time gets one unsolicited
 *   at once (the frames a Linux guest sends on link-up, MLD and DAD, come before its
 *   RS), and every `raIntervalMs` (default 300 s) all guests get one on ff02::1. The
 *   RA: hop limit 64, M and O from the config (a DHCPv6 server sets them), router
 *   lifetime 1800 s, source link-layer address, MTU, the prefix with the on-link and
 *   autonomous flags (valid 86400 s, preferred 14400 s, libslirp's), RDNSS naming the
 *   DNS address and DNSSL with the search domains (lifetime 1800 s, three times the
 *   interval, RFC 8106 §5.1), when there are any.
 * - Guest addresses: the neighbour table (ipv6-neighbours.ts) learns from the source
 *   of every packet, from NS (source and its link-layer address: the frame's), NA
 *   (target) and DAD probes (target). A guest address belongs to the guest that first
 *   used it; another guest sending from it, or advertising it, is dropped
 *   ("ipv6-spoofed-source", "ndp-spoofed-neighbour"). A guest advertising or sending
 *   from one of the gateway's addresses is dropped ("ndp-spoofed-gateway",
 *   "ipv6-source-own-address"): the table's entries stay as they were.
 * - Sources: a guest packet must come from a link-local address or one in the prefix
 *   ("ipv6-source-off-prefix"); :: only for DAD and MLD ("ipv6-source-unspecified").
 * - Echo: requests to the gateway's addresses are answered; to anywhere else they go
 *   to the `echo6` hook.
 * - UDP to any address (and to ff02::1:2, DHCPv6) goes to the `udp6` hook; TCP to the
 *   stack's TCP endpoints (the same as IPv4's, MSS MTU - 60).
 * - Reassembly: fragments are put together by the IPv4 reassembler's rules (overlap
 *   discards the datagram, RFC 5722; per-guest and total bounds, the same options as
 *   IPv4's), with IPv6's 60 s timeout, in a table of their own; counted under the
 *   same "reasm-*" reasons.
 * - ICMPv6 errors, as a router sends them (RFC 4443), from the gateway's address of
 *   the guest's scope (link-local to a link-local guest, else the host address), at
 *   most `icmpErrorsPerSecond` (default 100; "icmpv6-error-rate-limited"), never about
 *   an ICMPv6 error, a multicast destination or an unspecified source: time exceeded
 *   when a packet to the outside arrives with hop limit 1 or less; destination
 *   unreachable (no route) when nothing carries IPv6 to the outside (no `udp6`/`echo6`
 *   hook: "ipv6-udp-no-handler", "ipv6-echo-no-handler"); parameter problem for an
 *   unknown next header sent to the gateway. The NAT's own errors go through
 *   `sendIcmp6Error`.
 *
 * What it deliberately does not: route between guests (the hub does), forward by a
 * routing header or to a link-local destination other than its own, act on a guest's
 * RA or redirect ("ndp-ignored"), join MLD (guests' reports are ignored: the hub
 * floods multicast anyway), answer echo to multicast groups.
 */
import type { Clock } from "./clock.js";
import { gatewayAddresses6, type Ipv6StackConfig, virtualMac6 } from "./config.js";
import type { DropCounters } from "./drop-counters.js";
import type { GuestTcpLayer } from "./guest-tcp.js";
import { Ipv4Reassembler, type Ipv4ReassemblerOptions } from "./ipv4-reassembler.js";
import { Ipv6Neighbours } from "./ipv6-neighbours.js";
import { Ipv6Output } from "./ipv6-output.js";
import { type ChecksumPolicy, checksumFull, checksumOffloaded, pseudoHeader6 } from "./wire/checksum.js";
import {
  decodeIcmp6,
  encodeIcmp6,
  type Icmp6Error,
  type Icmp6Message,
  Icmp6ParameterProblemCode,
  Icmp6TimeExceededCode,
  Icmp6UnreachableCode,
  icmp6EncodingLength,
  PROTO_ICMPV6,
} from "./wire/icmpv6.js";
import { decodeIpv6, encodeIpv6Quote, Ipv6Next, ipv6HeaderLength, walkExtensions } from "./wire/ipv6.js";
import {
  IPV6_ALL_NODES,
  type Ipv6Address,
  ipv6InPrefix,
  ipv6Key,
  ipv6MulticastMac,
  isIpv6LinkLocal,
  isIpv6Multicast,
  isIpv6Unspecified,
  parseIpv6,
  solicitedNode,
} from "./wire/ipv6-addr.js";
import { decodeNdp, encodeNdp, isNdpType, type NdpMessage, type NdpOptions } from "./wire/ndp.js";
import { decodeTcp } from "./wire/tcp.js";
import { decodeUdp, encodeUdp, udpHeaderLength } from "./wire/udp.js";

/** A UDP datagram from a guest over IPv6 (see user-stack.ts GuestUdp6). */
export interface GuestUdp6 {
  srcMac: Buffer;
  guest: number;
  src: Ipv6Address;
  srcPort: number;
  dst: Ipv6Address;
  dstPort: number;
  payload: Buffer;
  quote(): Buffer;
}

/** UDP the stack sends to a guest over IPv6. */
export interface UdpToGuest6 {
  src: Ipv6Address;
  srcPort: number;
  dst: Ipv6Address;
  dstPort: number;
  payload: Buffer;
  dstMac?: Buffer;
}

/** An ICMPv6 echo request from a guest to an address outside the stack's own. */
export interface GuestEcho6 {
  guest: number;
  src: Ipv6Address;
  dst: Ipv6Address;
  id: number;
  seq: number;
  payload: Buffer;
}

/** An ICMPv6 echo reply to a guest, from `src` (an outside address that answered). */
export interface EchoReplyToGuest6 {
  src: Ipv6Address;
  dst: Ipv6Address;
  id: number;
  seq: number;
  payload: Buffer;
}

/** An ICMPv6 error to a guest (`sendIcmp6Error`): what went wrong, without the quote. */
export type Icmp6ErrorKind =
  | { kind: "dest-unreachable"; code: number }
  | { kind: "packet-too-big"; mtu: number }
  | { kind: "time-exceeded"; code: number }
  | { kind: "parameter-problem"; code: number; pointer: number };

export interface Ipv6Hooks {
  udp6?(d: GuestUdp6): void;
  echo6?(e: GuestEcho6): void;
}

export interface Ipv6GatewayOptions {
  /** the interval of unsolicited RAs to ff02::1 (ms; default 300 s) */
  raIntervalMs?: number;
  /** how long a guest address stays its guest's after it last used it (ms; default 60 s) */
  addressBindingMs?: number;
  /** neighbour table entries (default 65,536; oldest forgotten first) */
  maxNeighbours?: number;
  /** ICMPv6 errors the gateway sends per second at most (default 100) */
  icmpErrorsPerSecond?: number;
  /** reassembly bounds, as IPv4's */
  reassembly?: Pick<Ipv4ReassemblerOptions, "maxDatagrams" | "maxDatagramsPerSource">;
}

export interface Ipv6Counters {
  rxPackets: number;
  neighborAdvertisements: number;
  routerAdvertisements: number;
  echoReplies: number;
  icmpErrors: number;
}

/** RFC 8200: reassembly gives up after 60 s. */
const reassemblyTimeoutMs = 60_000;
const routerLifetimeS = 1800;
const validLifetimeS = 86_400;
const preferredLifetimeS = 14_400;
const dnsLifetimeS = 1800;
/** guests remembered as having had their first RA (cleared when their port leaves) */
const maxGreeted = 65_536;

export class Ipv6Gateway {
  readonly neighbours: Ipv6Neighbours;
  readonly counters: Ipv6Counters = {
    rxPackets: 0,
    neighborAdvertisements: 0,
    routerAdvertisements: 0,
    echoReplies: 0,
    icmpErrors: 0,
  };
  /** our unicast addresses by key → their MACs */
  private readonly owned = new Map<string, Buffer>();
  /** our multicast groups by key (all nodes, all routers, solicited-node, DHCPv6 servers) */
  private readonly groups = new Set<string>();
  readonly macs: Buffer[];
  private readonly routerMac: Buffer;
  private readonly output: Ipv6Output;
  private readonly reassembler: Ipv4Reassembler;
  private readonly raIntervalMs: number;
  private readonly icmpErrorsPerSecond: number;
  private nextRaAt: number | undefined;
  private readonly greeted = new Set<number>();
  private errorWindowStart = 0;
  private errorsInWindow = 0;
  private readonly ra: Buffer;

  constructor(
    readonly config: Ipv6StackConfig,
    private readonly mtu: number,
    private readonly clock: Clock,
    private readonly drops: DropCounters,
    private readonly tcp: GuestTcpLayer,
    private readonly hooks: Ipv6Hooks,
    /** frames made outside `input` */
    private readonly emit: (frames: Buffer[]) => void,
    alloc: (n: number) => Buffer,
    options: Ipv6GatewayOptions = {},
  ) {
    for (const a of gatewayAddresses6(config)) {
      this.owned.set(ipv6Key(a), virtualMac6(a));
      this.groups.add(ipv6Key(solicitedNode(a)));
    }
    for (const g of ["ff02::1", "ff02::2", "ff02::1:2"])
      this.groups.add(ipv6Key(parseIpv6(g) as Ipv6Address));
    this.macs = [...new Set([...this.owned.values()].map((m) => m.toString("hex")))].map((h) =>
      Buffer.from(h, "hex"),
    );
    this.routerMac = virtualMac6(config.linkLocal);
    this.output = new Ipv6Output(mtu, alloc);
    this.reassembler = new Ipv4Reassembler({
      ...options.reassembly,
      // the limit is on the fragmentable part plus an IPv4-sized header the reassembler adds
      maxSize: 65535 + 20,
      timeoutMs: reassemblyTimeoutMs,
      drops,
    });
    this.raIntervalMs = options.raIntervalMs ?? 300_000;
    this.icmpErrorsPerSecond = options.icmpErrorsPerSecond ?? 100;
    this.neighbours = new Ipv6Neighbours(options.maxNeighbours ?? 65_536, options.addressBindingMs ?? 60_000);
    this.ra = this.buildRa();
  }

  /** The reassembly bounds in force. */
  get reassemblyLimits(): { maxDatagrams: number; maxDatagramsPerSource: number } {
    return this.reassembler.limits;
  }

  /** Whether a frame to `mac` (its first six bytes) is one the gateway listens to. */
  isForUs(frame: Buffer): boolean {
    if (frame[0] === 0x33 && frame[1] === 0x33) return true;
    for (const m of this.macs) if (m[0] === frame[0] && m.compare(frame, 0, 6, 0, 6) === 0) return true;
    return false;
  }

  nextDeadline(): number | undefined {
    const a = this.reassembler.nextDeadline();
    const b = this.nextRaAt;
    if (a === undefined) return b;
    return b === undefined ? a : Math.min(a, b);
  }

  onTimer(now: number): void {
    this.reassembler.expire(now);
    if (this.nextRaAt !== undefined && now >= this.nextRaAt) {
      this.nextRaAt = now + this.raIntervalMs;
      this.emit(this.raFrames(ipv6MulticastMac(IPV6_ALL_NODES)));
    }
  }

  /** The guests of a hub port that left: their addresses are free again. */
  guestsLeft(gone: ReadonlySet<number>): void {
    this.neighbours.forgetGuests(gone);
    for (const g of gone) this.greeted.delete(g);
  }

  /** The gateway's address to answer a guest at `dst` from: link-local for link-local, else the host's. */
  private sourceFor(dst: Uint8Array): Ipv6Address {
    return isIpv6LinkLocal(dst) ? this.config.linkLocal : this.config.host;
  }

  /**
   * One IPv6 packet (the Ethernet payload) from `srcMac`, guest `guest`, at `now`;
   * `trusted`: the frame's producer vouched for its TCP/UDP checksum (offloads).
   */
  input(srcMac: Buffer, payload: Buffer, guest: number, now: number, trusted: boolean, out: Buffer[]): void {
    this.counters.rxPackets++;
    const r = decodeIpv6(payload);
    if (!r.ok) return this.drops.drop(r.reason);
    const ip = r.value;
    const src = ip.src;
    const dst = ip.dst;
    // a guest seen for the first time gets a router advertisement now (see the header)
    if (!this.greeted.has(guest)) this.greet(guest, srcMac, out);

    const dstKey = ipv6Key(dst);
    const ourMac = this.owned.get(dstKey);
    const multicast = isIpv6Multicast(dst);
    // other guests' solicited-node groups carry their NS and DAD probes, which teach the
    // neighbour table; other groups are none of the gateway's business
    if (multicast && !this.groups.has(dstKey) && !isSolicitedNode(dst)) {
      this.drops.drop("ipv6-multicast-ignored");
      return;
    }

    if (isIpv6Unspecified(src)) {
      // only DAD probes (NS) and MLD reports come from ::
      if (ip.protocol === Ipv6Next.icmpv6 && ip.fragment === undefined && ip.payload.length > 0) {
        if (ip.payload[0] === 135)
          return this.inputIcmp(srcMac, ip.hopLimit, src, dst, ip.payload, guest, now, out);
      }
      return this.drops.drop("ipv6-source-unspecified");
    }
    if (isIpv6Multicast(src)) return this.drops.drop("ipv6-source-multicast");
    if (this.owned.has(ipv6Key(src))) return this.drops.drop("ipv6-source-own-address");
    if (!isIpv6LinkLocal(src) && !ipv6InPrefix(src, this.config.prefix, this.config.prefixLength))
      return this.drops.drop("ipv6-source-off-prefix");
    if (!this.neighbours.claim(src, srcMac, guest, now)) return this.drops.drop("ipv6-spoofed-source");

    if (ourMac === undefined && !multicast) {
      // to the outside (or to another station on the link, which the hub delivers)
      if (isIpv6LinkLocal(dst) || ipv6InPrefix(dst, this.config.prefix, this.config.prefixLength)) {
        this.drops.drop("ipv6-not-ours");
        return;
      }
      if (ip.hopLimit <= 1) {
        this.drops.drop("ipv6-hop-limit-exceeded");
        return this.sendError(
          src,
          this.sourceFor(src),
          { kind: "time-exceeded", code: Icmp6TimeExceededCode.hopLimit },
          ip.protocol,
          dst,
          ip.payload,
        );
      }
    }

    let protocol = ip.protocol;
    let upper = ip.payload;
    if (ip.fragment !== undefined) {
      const whole = this.reassembler.push(
        {
          src: 0,
          dst: 0,
          key: `${ipv6Key(src)}${dstKey}`,
          id: ip.fragment.id,
          protocol: ip.protocol,
          fragmentOffset: ip.fragment.offset,
          moreFragments: ip.fragment.more,
          payload: ip.payload,
          guest,
        },
        now,
      );
      if (whole === undefined) return;
      const chain = walkExtensions(whole.payload, whole.protocol, 0);
      if (!chain.ok) return this.drops.drop(chain.reason);
      protocol = chain.value.protocol;
      upper = whole.payload.subarray(chain.value.at);
    }

    switch (protocol) {
      case Ipv6Next.udp:
        return this.inputUdp(srcMac, src, dst, upper, guest, trusted, multicast);
      case Ipv6Next.tcp: {
        if (multicast) return this.drops.drop("tcp-multicast");
        const t = decodeTcp(upper, pseudoHeader6(src, dst), trusted ? checksumOffloaded : checksumFull);
        if (!t.ok) return this.drops.drop(t.reason);
        return this.tcp.input6(src, dst, t.value, guest);
      }
      case Ipv6Next.icmpv6:
        return this.inputIcmp(srcMac, ip.hopLimit, src, dst, upper, guest, now, out);
      case Ipv6Next.none:
        this.drops.drop("ipv6-no-next-header");
        return;
      default:
        this.drops.drop("ipv6-unsupported-protocol");
        if (ourMac !== undefined && ip.fragment === undefined) {
          // RFC 8200 §4: an unrecognised next header at its destination
          this.sendError(
            src,
            dst,
            {
              kind: "parameter-problem",
              code: Icmp6ParameterProblemCode.nextHeader,
              pointer: nextHeaderOffset(payload, ip.headerLength ?? ipv6HeaderLength),
            },
            ip.protocol,
            dst,
            ip.payload,
            payload,
          );
        }
    }
  }

  private inputUdp(
    srcMac: Buffer,
    src: Ipv6Address,
    dst: Ipv6Address,
    payload: Buffer,
    guest: number,
    trusted: boolean,
    multicast: boolean,
  ): void {
    const r = decodeUdp(payload, pseudoHeader6(src, dst), trusted ? checksumOffloaded : checksumFull);
    if (!r.ok) return this.drops.drop(r.reason);
    // RFC 8200 §8.1: a zero UDP checksum is not allowed over IPv6
    if (r.value.checksum === 0 && !trusted) return this.drops.drop("udp-zero-checksum");
    const u = r.value;
    if (!this.hooks.udp6) {
      this.drops.drop("ipv6-udp-no-handler");
      if (!multicast) {
        const owned = this.owned.has(ipv6Key(dst));
        this.sendError(
          src,
          owned ? dst : this.sourceFor(src),
          owned
            ? { kind: "dest-unreachable", code: Icmp6UnreachableCode.port }
            : { kind: "dest-unreachable", code: Icmp6UnreachableCode.noRoute },
          Ipv6Next.udp,
          dst,
          payload,
        );
      }
      return;
    }
    this.hooks.udp6({
      srcMac,
      guest,
      src,
      srcPort: u.srcPort,
      dst,
      dstPort: u.dstPort,
      payload: u.payload,
      quote: () => encodeIpv6Quote(src, dst, Ipv6Next.udp, payload),
    });
  }

  private inputIcmp(
    srcMac: Buffer,
    hopLimit: number,
    src: Ipv6Address,
    dst: Ipv6Address,
    payload: Buffer,
    guest: number,
    now: number,
    out: Buffer[],
  ): void {
    const r = decodeIcmp6(payload, pseudoHeader6(src, dst));
    if (!r.ok) return this.drops.drop(r.reason);
    const m = r.value;
    if (m.kind === "other" && isNdpType(m.type)) {
      if (hopLimit !== 255) return this.drops.drop("ndp-bad-hop-limit");
      const n = decodeNdp(m);
      if (!n.ok) return this.drops.drop(n.reason);
      return this.inputNdp(srcMac, src, n.value, guest, now, out);
    }
    const ourMac = this.owned.get(ipv6Key(dst));
    if (m.kind === "echo-request") {
      if (ourMac !== undefined) {
        const reply = this.icmpPacket(dst, src, {
          kind: "echo-reply",
          code: 0,
          id: m.id,
          seq: m.seq,
          payload: m.payload,
        });
        for (const f of this.output.frames({
          srcMac: ourMac,
          dstMac: srcMac,
          src: dst,
          dst: src,
          protocol: PROTO_ICMPV6,
          payload: reply,
        }))
          out.push(f);
        this.counters.echoReplies++;
        return;
      }
      if (isIpv6Multicast(dst)) return this.drops.drop("ipv6-echo-multicast-ignored");
      if (!this.hooks.echo6) {
        this.drops.drop("ipv6-echo-no-handler");
        return this.sendError(
          src,
          this.sourceFor(src),
          { kind: "dest-unreachable", code: Icmp6UnreachableCode.noRoute },
          PROTO_ICMPV6,
          dst,
          payload,
        );
      }
      this.hooks.echo6({ guest, src, dst, id: m.id, seq: m.seq, payload: m.payload });
      return;
    }
    // echo replies and errors from guests, MLD, and the rest: nothing to do
    this.drops.drop("icmpv6-ignored");
  }

  private inputNdp(
    srcMac: Buffer,
    src: Ipv6Address,
    n: NdpMessage,
    guest: number,
    now: number,
    out: Buffer[],
  ): void {
    const unspecified = isIpv6Unspecified(src);
    switch (n.kind) {
      case "ns": {
        if (isIpv6Multicast(n.target)) return this.drops.drop("ndp-bad-target");
        const targetMac = this.owned.get(ipv6Key(n.target));
        if (unspecified) {
          // DAD (RFC 4862 §5.4.3): defend our addresses; note the guest's tentative one
          if (targetMac !== undefined) {
            this.drops.drop("ndp-dad-for-gateway-address");
            return this.pushNa(
              out,
              n.target,
              targetMac,
              IPV6_ALL_NODES,
              ipv6MulticastMac(IPV6_ALL_NODES),
              false,
            );
          }
          if (this.neighbours.heldByOther(n.target, guest, now))
            return this.drops.drop("ndp-spoofed-neighbour");
          if (
            isIpv6LinkLocal(n.target) ||
            ipv6InPrefix(n.target, this.config.prefix, this.config.prefixLength)
          )
            this.neighbours.claim(n.target, srcMac, guest, now);
          return;
        }
        if (targetMac === undefined) {
          this.drops.drop("ndp-not-ours");
          return;
        }
        return this.pushNa(out, n.target, targetMac, src, srcMac, true);
      }
      case "na": {
        if (this.owned.has(ipv6Key(n.target))) return this.drops.drop("ndp-spoofed-gateway");
        if (
          !isIpv6LinkLocal(n.target) &&
          !ipv6InPrefix(n.target, this.config.prefix, this.config.prefixLength)
        )
          return this.drops.drop("ndp-bad-target");
        if (!this.neighbours.claim(n.target, srcMac, guest, now))
          return this.drops.drop("ndp-spoofed-neighbour");
        return;
      }
      case "rs":
        // answered at once, in a frame to the soliciting guest only (see the header)
        for (const f of this.raFrames(srcMac)) out.push(f);
        return;
      default:
        // a guest's RA or redirect: the gateway is the router here
        this.drops.drop("ndp-ignored");
    }
  }

  private greet(guest: number, mac: Buffer, out: Buffer[]): void {
    if (this.greeted.size >= maxGreeted) this.greeted.clear();
    this.greeted.add(guest);
    for (const f of this.raFrames(mac)) out.push(f);
    if (this.nextRaAt === undefined) this.nextRaAt = this.clock.now() + this.raIntervalMs;
  }

  private pushNa(
    out: Buffer[],
    target: Uint8Array,
    mac: Buffer,
    to: Uint8Array,
    toMac: Buffer,
    solicited: boolean,
  ): void {
    const na = encodeNdp({
      kind: "na",
      router: true,
      solicited,
      override: true,
      target: Buffer.from(target),
      options: { targetLinkAddress: mac },
    });
    const src = Buffer.from(target);
    const dst = Buffer.from(to);
    const payload = this.icmpPacket(src, dst, na);
    for (const f of this.output.frames({
      srcMac: mac,
      dstMac: toMac,
      src,
      dst,
      protocol: PROTO_ICMPV6,
      payload,
      hopLimit: 255,
    }))
      out.push(f);
    this.counters.neighborAdvertisements++;
  }

  private buildRa(): Buffer {
    const c = this.config;
    const options: NdpOptions = {
      sourceLinkAddress: this.routerMac,
      mtu: this.mtu,
      prefixes: [
        {
          prefixLength: c.prefixLength,
          onLink: true,
          autonomous: true,
          validLifetime: validLifetimeS,
          preferredLifetime: preferredLifetimeS,
          prefix: c.prefix,
        },
      ],
    };
    if (c.announceDns) options.rdnss = [{ lifetime: dnsLifetimeS, servers: [c.dns] }];
    if (c.dnsSearch.length > 0) options.dnssl = [{ lifetime: dnsLifetimeS, domains: [...c.dnsSearch] }];
    const ra = encodeNdp({
      kind: "ra",
      curHopLimit: 64,
      managed: c.managed,
      other: c.otherConfig,
      routerLifetime: routerLifetimeS,
      reachableTime: 0,
      retransTimer: 0,
      options,
    });
    return this.icmpPacket(c.linkLocal, IPV6_ALL_NODES, ra);
  }

  /** The RA in a frame to `dstMac` (33:33:00:00:00:01 for all guests, or one guest's MAC). */
  private raFrames(dstMac: Buffer): Buffer[] {
    this.counters.routerAdvertisements++;
    return this.output.frames({
      srcMac: this.routerMac,
      dstMac,
      src: this.config.linkLocal,
      dst: IPV6_ALL_NODES,
      protocol: PROTO_ICMPV6,
      payload: this.ra,
      hopLimit: 255,
    });
  }

  private icmpPacket(src: Uint8Array, dst: Uint8Array, m: Icmp6Message): Buffer {
    const b = Buffer.allocUnsafe(icmp6EncodingLength(m));
    encodeIcmp6(m, b, 0, pseudoHeader6(src, dst));
    return b;
  }

  /** Whether one more ICMPv6 error may go out now (a window of one second). */
  private errorAllowed(): boolean {
    const now = this.clock.now();
    if (now - this.errorWindowStart >= 1000) {
      this.errorWindowStart = now;
      this.errorsInWindow = 0;
    }
    if (this.errorsInWindow >= this.icmpErrorsPerSecond) {
      this.drops.drop("icmpv6-error-rate-limited");
      return false;
    }
    this.errorsInWindow++;
    return true;
  }

  /**
   * An ICMPv6 error about a guest packet from `to` to `origDst` (`protocol`,
   * upper-layer `upper`; `whole`: the packet itself to quote, when at hand).
   */
  private sendError(
    to: Ipv6Address,
    from: Ipv6Address,
    e: Icmp6ErrorKind,
    protocol: number,
    origDst: Ipv6Address,
    upper: Buffer,
    whole?: Buffer,
  ): void {
    if (protocol === PROTO_ICMPV6 && upper.length > 0 && (upper[0] as number) < 128) return; // never about an error
    const quote =
      whole !== undefined
        ? whole.subarray(0, Math.min(whole.length, 1280 - 48))
        : encodeIpv6Quote(to, origDst, protocol, upper);
    this.sendIcmp6Error(to, from, e, quote);
  }

  /** Sends a guest an ICMPv6 error from `from` quoting `quote` (a GuestUdp6's `quote()`); false when not sent. */
  sendIcmp6Error(to: Ipv6Address, from: Ipv6Address, e: Icmp6ErrorKind, quote: Buffer): boolean {
    if (isIpv6Multicast(to) || isIpv6Unspecified(to)) return false;
    const dstMac = this.neighbours.lookup(to);
    if (dstMac === undefined) {
      this.drops.drop("icmpv6-guest-mac-unknown");
      return false;
    }
    if (!this.errorAllowed()) return false;
    const payload = quote.subarray(0, Math.min(quote.length, 1280 - 48));
    let m: Icmp6Error;
    switch (e.kind) {
      case "packet-too-big":
        m = { kind: "packet-too-big", code: 0, mtu: e.mtu, payload };
        break;
      case "parameter-problem":
        m = { kind: "parameter-problem", code: e.code, pointer: e.pointer, payload };
        break;
      default:
        m = { kind: e.kind, code: e.code, payload };
    }
    const packet = this.icmpPacket(from, to, m);
    this.emitFrames(
      this.output.frames({
        srcMac: this.owned.get(ipv6Key(from)) ?? this.routerMac,
        dstMac,
        src: from,
        dst: to,
        protocol: PROTO_ICMPV6,
        payload: packet,
      }),
    );
    this.counters.icmpErrors++;
    return true;
  }

  /** Sends a UDP datagram to a guest; false when its MAC is unknown (an NS goes out instead). */
  sendUdp6(d: UdpToGuest6): boolean {
    const dstMac =
      d.dstMac ?? (isIpv6Multicast(d.dst) ? ipv6MulticastMac(d.dst) : this.neighbours.lookup(d.dst));
    if (dstMac === undefined) {
      this.solicit(d.dst, d.src);
      this.drops.drop("udp-guest-mac-unknown");
      return false;
    }
    const dgram = Buffer.allocUnsafe(udpHeaderLength + d.payload.length);
    encodeUdp(
      { srcPort: d.srcPort, dstPort: d.dstPort, payload: d.payload },
      dgram,
      0,
      pseudoHeader6(d.src, d.dst),
    );
    this.emitFrames(
      this.output.frames({
        srcMac: this.owned.get(ipv6Key(d.src)) ?? this.routerMac,
        dstMac,
        src: d.src,
        dst: d.dst,
        protocol: Ipv6Next.udp,
        payload: dgram,
      }),
    );
    return true;
  }

  /** An echo reply to a guest from an outside address that answered. */
  sendEchoReply6(e: EchoReplyToGuest6): boolean {
    const dstMac = this.neighbours.lookup(e.dst);
    if (dstMac === undefined) {
      this.drops.drop("icmpv6-guest-mac-unknown");
      return false;
    }
    const packet = this.icmpPacket(e.src, e.dst, {
      kind: "echo-reply",
      code: 0,
      id: e.id,
      seq: e.seq,
      payload: e.payload,
    });
    this.emitFrames(
      this.output.frames({
        srcMac: this.routerMac,
        dstMac,
        src: e.src,
        dst: e.dst,
        protocol: PROTO_ICMPV6,
        payload: packet,
      }),
    );
    return true;
  }

  /** The frame of one TCP segment to a guest (see UserStack.sendTcp); undefined when its MAC is unknown. */
  tcpFrame(
    src: Ipv6Address,
    dst: Ipv6Address,
    seg: Parameters<Ipv6Output["tcp"]>[4],
    policy: ChecksumPolicy,
    tail?: Buffer,
  ): Buffer | undefined {
    const dstMac = this.neighbours.lookup(dst);
    if (dstMac === undefined) {
      this.solicit(dst, src);
      return undefined;
    }
    return this.output.tcp(
      this.owned.get(ipv6Key(src)) ?? this.routerMac,
      dstMac,
      src,
      dst,
      seg,
      policy,
      tail,
    );
  }

  /** Asks the link who has `target` (a guest we must reach but have not heard from). */
  private solicit(target: Ipv6Address, from: Ipv6Address): void {
    if (isIpv6Multicast(target)) return;
    if (!isIpv6LinkLocal(target) && !ipv6InPrefix(target, this.config.prefix, this.config.prefixLength))
      return;
    const src = this.owned.has(ipv6Key(from)) ? from : this.sourceFor(target);
    const group = solicitedNode(target);
    const ns = encodeNdp({
      kind: "ns",
      target: Buffer.from(target),
      options: { sourceLinkAddress: this.owned.get(ipv6Key(src)) ?? this.routerMac },
    });
    this.emitFrames(
      this.output.frames({
        srcMac: this.owned.get(ipv6Key(src)) ?? this.routerMac,
        dstMac: ipv6MulticastMac(group),
        src,
        dst: group,
        protocol: PROTO_ICMPV6,
        payload: this.icmpPacket(src, group, ns),
        hopLimit: 255,
      }),
    );
  }

  private emitFrames(frames: Buffer[]): void {
    if (frames.length > 0) this.emit(frames);
  }

  /** Whether `a` is one of the gateway's own IPv6 addresses. */
  owns(a: Uint8Array): boolean {
    return this.owned.has(ipv6Key(a));
  }
}

/** ff02::1:ff00:0/104 */
function isSolicitedNode(a: Uint8Array): boolean {
  if (a[0] !== 0xff || a[1] !== 0x02 || a[11] !== 1 || a[12] !== 0xff) return false;
  for (let i = 2; i < 11; i++) if (a[i] !== 0) return false;
  return true;
}

/** The offset, in the packet, of the next-header field naming the unknown protocol. */
function nextHeaderOffset(packet: Buffer, headerLength: number): number {
  if (headerLength <= ipv6HeaderLength) return 6;
  // the last extension header before the payload holds it in its first byte
  let at = ipv6HeaderLength;
  let last = 6;
  let next = packet[6] as number;
  while (at < headerLength) {
    last = at;
    const len = next === Ipv6Next.fragment ? 8 : ((packet[at + 1] as number) + 1) * 8;
    next = packet[at] as number;
    at += len;
  }
  return last;
}
