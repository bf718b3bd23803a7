/**
 * The user stack: the virtual gateway a guest sees on its LAN, as QEMU's slirp
 * presents it. Sans-I/O: frames in, frames out, time from an injected clock.
 *
 * What it does today:
 * - answers ARP requests for the addresses it owns (the gateway/host address, the
 *   DNS address, the SMB address when SMB is on, guestfwd servers), each with the
 *   MAC libslirp uses for it (52:55 followed by the IPv4 address);
 * - learns guest MACs from ARP and from the source of guest IPv4 frames;
 * - validates IPv4 (header checksum, lengths) and reassembles fragments;
 * - answers ICMP echo sent to its addresses, fragmenting large replies to the MTU;
 * - hands every valid guest UDP datagram (to its addresses, to the outside, or to
 *   the broadcast address) to the `udp` hook and every guest TCP connection to the
 *   `tcp` hook, which route them to a built-in service or the NAT proxy (the routing
 *   table, routes.ts), and sends UDP and ICMP errors back on their behalf; guest
 *   pings to the outside go to the `echo` hook.
 *
 * What it deliberately does not: forward frames between guests (the hub does),
 * answer for addresses it does not own (another guest may hold them), act on
 * 802.1Q-tagged frames (on a hub, the hub number is the VLAN).
 *
 * Guests (trust model: a guest is the hub port and MAC its frame came from, not what
 * its packets claim). Every frame addressed to the stack is first given its guest id
 * (guest-bounds.ts `GuestIdentities`: at most `maxGuestsPerPort` per hub port, frames
 * past that dropped as "guest-identity-limit"); that id is what every per-guest bound
 * counts against (TCP here, UDP/ICMP/DNS/TFTP through the hooks).
 *
 * Source addresses. A guest IPv4 packet is dropped and counted when its
 * source is outside the subnet ("ipv4-source-off-subnet"), the network or broadcast
 * address ("ipv4-source-broadcast"), one of the stack's own addresses
 * ("ipv4-source-own-address"), or 0.0.0.0 on anything but a DHCP request
 * ("ipv4-source-unspecified"). An address then belongs to one guest: the DHCP lease's
 * MAC (`bindAddress`, until the lease ends; the first port that MAC speaks from holds
 * it) or else the first guest seen using it, for `addressBindingMs` after its owner
 * last used it; the same address from another guest meanwhile is dropped
 * ("ipv4-spoofed-source"), and an ARP packet from another guest claiming it teaches
 * the ARP table nothing ("arp-spoofed-sender"). When a port leaves the hub
 * (`portLeft`), its guests' leased addresses go back to their MACs alone, so a QEMU
 * client that reconnects keeps its lease. The bindings (at most `maxAddressBindings`,
 * oldest forgotten first) also tell the DHCP server which addresses are in use
 * (`addressOwner`).
 *
 * Every frame that is not acted on is counted: malformed input under its decoder's
 * reason, well-formed traffic meant for someone else as "ignored", traffic to the
 * outside in a protocol the NAT does not carry (anything but UDP, TCP and ICMP) as
 * "ipv4-unrouted". Nothing in here throws on guest bytes.
 *
 * Timers: IPv4 reassembly gives up on a datagram after 30 s (`nextDeadline`, `onTimer`).
 */

import { ArpTable } from "./arp-table.js";
import type { Clock } from "./clock.js";
import { gatewayAddresses, type StackConfig, virtualMac } from "./config.js";
import { DropCounters } from "./drop-counters.js";
import { type Bounds, ByteBudget, GuestIdentities, type GuestIdentityOptions } from "./guest-bounds.js";
import { type GuestTcpEvents, GuestTcpLayer } from "./guest-tcp.js";
import { Ipv4Output } from "./ipv4-output.js";
import { Ipv4Reassembler, type Ipv4ReassemblerOptions } from "./ipv4-reassembler.js";
import {
  type EchoReplyToGuest6,
  type GuestEcho6,
  type GuestUdp6,
  type Icmp6ErrorKind,
  Ipv6Gateway,
  type Ipv6GatewayOptions,
  type UdpToGuest6,
} from "./ipv6-gateway.js";
import type { Ipv6NeighbourEntry } from "./ipv6-neighbours.js";
import { guestKeyOfAddr, type TcpFlowTableOptions } from "./tcp/flow-table.js";
import { newTcpEndpointCounters, type TcpEndpointCounters, type TcpOutput } from "./tcp/tcp-endpoint.js";
import { BROADCAST_MAC, isBroadcastMac, isIpv4Multicast, sameMac } from "./wire/addr.js";
import { ArpOp, arpPacketLength, decodeArp, encodeArp } from "./wire/arp.js";
import { checksumFull, checksumOffloaded, pseudoHeader6, pseudoHeaderSum } from "./wire/checksum.js";
import { decodeEthernet, EtherType, encodeEthernet, ethernetHeaderLength } from "./wire/ethernet.js";
import { joinTail, markOffload, offloadOf } from "./wire/frame-offload.js";
import { FrameSlab } from "./wire/frame-slab.js";
import {
  decodeIcmp,
  encodeIcmp,
  type IcmpDestUnreachable,
  type IcmpTimeExceeded,
  icmpHeaderLength,
} from "./wire/icmp.js";
import { decodeIpv4, encodeIpv4Quote, IpProto, ipv4HeaderLength } from "./wire/ipv4.js";
import { ipv6HeaderLength } from "./wire/ipv6.js";
import type { IpAddress, Ipv6Address } from "./wire/ipv6-addr.js";
import { decodeTcp, tcpChecksumOffset, tcpEncodingLength } from "./wire/tcp.js";
import { decodeUdp, encodeUdp, udpHeaderLength } from "./wire/udp.js";

/** A UDP datagram from a guest. `payload` is a view, valid only during the hook call. */
export interface GuestUdp {
  srcMac: Buffer;
  /** the sender's guest id (guest-bounds.ts), what per-guest bounds count against */
  guest: number;
  src: number;
  srcPort: number;
  dst: number;
  dstPort: number;
  payload: Buffer;
  /** the start of the datagram as an ICMP error quotes it (IPv4 header + 8 bytes) */
  quote(): Buffer;
}

/** UDP the stack sends to a guest on someone's behalf. */
export interface UdpToGuest {
  src: number;
  srcPort: number;
  dst: number;
  dstPort: number;
  payload: Buffer;
  /** where the frame goes; the ARP table's entry for `dst` when absent, broadcast for 255.255.255.255 */
  dstMac?: Buffer;
}

export type {
  EchoReplyToGuest6,
  GuestEcho6,
  GuestUdp6,
  Icmp6ErrorKind,
  UdpToGuest6,
} from "./ipv6-gateway.js";

/** The stack's only ways out, given at construction. */
export interface UserStackHooks {
  /** frames produced outside `input` (replies to host events) */
  emit(frames: Buffer[]): void;
  /** guest UDP; the stack answers nothing on UDP by itself */
  udp?(d: GuestUdp): void;
  /** events of guest TCP connections (a SYN arrives as `connect-request`) */
  tcp?: GuestTcpEvents;
  /** an ICMP echo request to an address outside the stack's own */
  echo?(e: { guest: number; src: number; dst: number; id: number; seq: number; payload: Buffer }): void;
  /**
   * guest UDP over IPv6 (absent: dropped as "ipv6-udp-no-handler"). The siblings of
   * `udp`, `tcp` and `echo` for IPv6 keep the IPv4 hooks' arguments numbers; the
   * stack's way back in is `sendUdp6`, `sendEchoReply6` and `sendIcmp6Error`.
   */
  udp6?(d: GuestUdp6): void;
  /** events of guest TCP connections over IPv6 (`conn.family` 6; absent: every SYN refused with a RST) */
  tcp6?: GuestTcpEvents;
  /** an ICMPv6 echo request to an address outside the stack's own (absent: dropped as "ipv6-echo-no-handler") */
  echo6?(e: GuestEcho6): void;
  /** a timer was armed outside `input` (the driver re-reads `nextDeadline`) */
  timersChanged?(): void;
}

export interface UserStackOptions {
  tcp?: Partial<TcpFlowTableOptions>;
  /** how long an address stays its MAC's after that MAC last used it (ms; default 60 s, as an ARP entry lives) */
  addressBindingMs?: number;
  /** addresses bound at once; past it the oldest binding is forgotten (default 65,536) */
  maxAddressBindings?: number;
  /** guest identities per hub port (guest-bounds.ts) */
  guests?: Partial<GuestIdentityOptions>;
  /** bytes of guest TCP data buffered towards the host, in all and per guest (guest-bounds.ts ByteBudget); unbounded when absent */
  buffers?: Bounds;
  /** IPv4 reassembly bounds (ipv4-reassembler.ts), also those of IPv6's */
  reassembly?: Pick<Ipv4ReassemblerOptions, "maxDatagrams" | "maxDatagramsPerSource">;
  /** the IPv6 side's timing and bounds (ipv6-gateway.ts) */
  ipv6?: Omit<Ipv6GatewayOptions, "reassembly" | "addressBindingMs">;
}

/**
 * Which guest an address belongs to, and until when (stack clock). `guest` 0: a leased
 * address whose MAC has not spoken yet (the first port it speaks from takes it). The
 * MAC as two numbers: no Buffer kept, no string built.
 */
interface AddressBinding {
  guest: number;
  hi: number;
  lo: number;
  until: number;
}

export interface UserStackCounters {
  rxFrames: number;
  txFrames: number;
  arpReplies: number;
  echoReplies: number;
  /** well-formed frames meant for another station on the hub */
  ignored: number;
}

/** TCP payload per super frame towards an offloading TAP: an IPv4 datagram stays under 64 KiB */
export const tsoMaxBytes = 65_000;
/** payloads this large go to an offloading TAP as a tail of their own (no copy) */
const tailMinBytes = 1024;
const EMPTY = Buffer.alloc(0);

export class UserStack {
  readonly drops = new DropCounters();
  readonly tcp: GuestTcpLayer;
  readonly arp = new ArpTable();
  readonly guests: GuestIdentities;
  /** bytes buffered for guests (undefined: not bounded) */
  readonly buffers: ByteBudget | undefined;
  readonly counters: UserStackCounters = {
    rxFrames: 0,
    txFrames: 0,
    arpReplies: 0,
    echoReplies: 0,
    ignored: 0,
  };
  /** retransmissions, reordering and probes of every TCP endpoint of this stack */
  readonly tcpCounters: TcpEndpointCounters = newTcpEndpointCounters();
  private readonly reassembler: Ipv4Reassembler;
  private readonly output: Ipv4Output;
  /** the IPv6 side; undefined when IPv6 is off */
  readonly ipv6: Ipv6Gateway | undefined;
  private readonly ipv4On: boolean;
  /** where IPv4 frames are made: back to back, so a stream port writes them without copies */
  private readonly slab = new FrameSlab();
  /** IPv4 address → the MAC the stack answers with for it */
  private readonly owned = new Map<number, Buffer>();
  private readonly ownMacs: Buffer[];
  private readonly broadcast: number;
  /** shared with every TCP endpoint: the largest segment they may emit (TSO); 0: one MSS */
  private readonly segmentOffload = { maxBytes: 0 };
  /** whether every frame we send may carry offload marks (see setOffloads) */
  private offloads = false;
  /** the frame being handled carries an offload mark: its producer vouches for its L4 checksum */
  private rxTrusted = false;
  /** guest address → the MAC that owns it (see the theory of operation) */
  private readonly bindings = new Map<number, AddressBinding>();
  private readonly addressBindingMs: number;
  private readonly maxAddressBindings: number;
  /** the clock, read once per `input` batch */
  private rxNow = 0;
  /** the hub port the frames being handled came from */
  private rxPort = 0;
  /** the guest id of the frame being handled */
  private rxGuest = 0;

  constructor(
    readonly config: StackConfig,
    private readonly clock: Clock,
    private readonly hooks: UserStackHooks = { emit() {} },
    options: UserStackOptions = {},
  ) {
    for (const a of gatewayAddresses(config)) this.owned.set(a, virtualMac(a));
    this.ipv4On = config.ipv4 !== false;
    this.broadcast = (config.net | ~config.mask) >>> 0;
    this.addressBindingMs = options.addressBindingMs ?? 60_000;
    this.maxAddressBindings = options.maxAddressBindings ?? 65_536;
    this.guests = new GuestIdentities(options.guests);
    this.buffers = options.buffers === undefined ? undefined : new ByteBudget(options.buffers);
    this.reassembler = new Ipv4Reassembler({ ...options.reassembly, drops: this.drops });
    this.output = new Ipv4Output(config.mtu, (n) => this.slab.take(n));
    const refuse: GuestTcpEvents = (conn, ev) => ev.type === "connect-request" && conn.refuse();
    const tcp4 = hooks.tcp ?? refuse;
    const tcp6 = hooks.tcp6 ?? refuse;
    this.tcp = new GuestTcpLayer(
      clock,
      this.drops,
      (segments) => this.sendTcp(segments),
      hooks.tcp6 === undefined ? tcp4 : (conn, ev) => (conn.family === 6 ? tcp6 : tcp4)(conn, ev),
      {
        ...options.tcp,
        ...(this.buffers === undefined ? {} : { budget: this.buffers }),
        endpoint: {
          mss: config.mtu - 40,
          segmentOffload: this.segmentOffload,
          counters: this.tcpCounters,
          ...options.tcp?.endpoint,
        },
      },
      () => hooks.timersChanged?.(),
      (addr) => this.guestKeyOf(addr),
    );
    this.ipv6 =
      config.ipv6 === undefined
        ? undefined
        : new Ipv6Gateway(
            config.ipv6,
            config.mtu,
            clock,
            this.drops,
            this.tcp,
            hooks,
            (frames) => this.emit(frames),
            (n) => this.slab.take(n),
            {
              ...options.ipv6,
              ...(options.reassembly === undefined ? {} : { reassembly: options.reassembly }),
              ...(options.addressBindingMs === undefined
                ? {}
                : { addressBindingMs: options.addressBindingMs }),
            },
          );
    this.ownMacs = [...this.owned.values(), ...(this.ipv6?.macs ?? [])];
  }

  /**
   * Binds `ip` to `mac` until `until` (stack clock), whoever held it: the DHCP server
   * leased it to that MAC. Later packets from the owner keep it at least
   * `addressBindingMs` past their arrival.
   */
  bindAddress(ip: number, mac: Buffer, until: number): void {
    const hi = mac.readUInt16BE(0);
    const lo = mac.readUInt32BE(2);
    const b = this.bindings.get(ip >>> 0);
    if (b !== undefined && b.hi === hi && b.lo === lo) {
      b.until = Math.max(b.until, until);
      return;
    }
    this.setBinding(ip >>> 0, { guest: 0, hi, lo, until });
  }

  /**
   * The hub port `port` left: its guest ids mean nothing any more. Their addresses
   * stay bound to their MACs (a lease outlives a reconnect), free for that MAC's next
   * identity to take.
   */
  portLeft(port: number): void {
    const gone = new Set(this.guests.portLeft(port));
    if (gone.size === 0) return;
    this.ipv6?.guestsLeft(gone);
    for (const b of this.bindings.values()) if (gone.has(b.guest)) b.guest = 0;
  }

  /** The MAC `ip` is bound to now, if any. */
  addressOwner(ip: number): Buffer | undefined {
    const b = this.bindings.get(ip >>> 0);
    if (b === undefined || b.until <= this.clock.now()) return undefined;
    const mac = Buffer.allocUnsafe(6);
    mac.writeUInt16BE(b.hi, 0);
    mac.writeUInt32BE(b.lo, 2);
    return mac;
  }

  private setBinding(ip: number, b: AddressBinding): void {
    this.bindings.delete(ip);
    this.bindings.set(ip, b);
    if (this.bindings.size > this.maxAddressBindings) {
      const oldest = this.bindings.keys().next().value;
      if (oldest !== undefined) this.bindings.delete(oldest);
    }
  }

  /** The guest id of whoever owns `addr` (a port forward towards it); an address key when nobody does yet. */
  private guestKeyOf(addr: IpAddress): number {
    if (typeof addr !== "number") {
      const g = this.ipv6?.neighbours.ownerOf(addr, this.clock.now()) ?? 0;
      // an IPv6 address nobody holds yet: a key above IPv4's, from its last 32 bits
      return g !== 0 ? g : 0x2_0000_0000_0000 + addr.readUInt32BE(12);
    }
    const b = this.bindings.get(addr >>> 0);
    if (b === undefined || b.guest === 0 || b.until <= this.clock.now()) return guestKeyOfAddr(addr);
    return b.guest;
  }

  /** The guest id that owns `addr` now, if any (0 when none). */
  guestOfAddress(addr: number): number {
    const b = this.bindings.get(addr >>> 0);
    if (b === undefined || b.until <= this.clock.now()) return 0;
    return b.guest;
  }

  /**
   * Whether the guest of the frame being handled (`rxGuest`, MAC `mac`) may send from
   * `ip` (in the subnet, not ours) now; binds a free or stale address to it and keeps
   * its own binding fresh. O(1), no allocation but a new binding's.
   */
  private ownsAddress(ip: number, mac: Buffer): boolean {
    const guest = this.rxGuest;
    const now = this.rxNow;
    const b = this.bindings.get(ip);
    if (b !== undefined && b.guest === guest) {
      const until = now + this.addressBindingMs;
      if (until > b.until) b.until = until;
      return true;
    }
    const hi = mac.readUInt16BE(0);
    const lo = mac.readUInt32BE(2);
    if (b === undefined) {
      this.setBinding(ip, { guest, hi, lo, until: now + this.addressBindingMs });
      return true;
    }
    if (b.guest === 0 && b.hi === hi && b.lo === lo) {
      // a leased address's MAC speaks: this port's guest holds it now
      b.guest = guest;
      b.until = Math.max(b.until, now + this.addressBindingMs);
      return true;
    }
    if (b.until > now) return false;
    b.guest = guest;
    b.hi = hi;
    b.lo = lo;
    b.until = now + this.addressBindingMs;
    return true;
  }

  /** Whether `ip` is bound, now, to a guest other than the one of the frame being handled. */
  private ownedByOther(ip: number, mac: Buffer): boolean {
    const b = this.bindings.get(ip >>> 0);
    if (b === undefined || b.until <= this.rxNow) return false;
    if (b.guest === 0) return b.hi !== mac.readUInt16BE(0) || b.lo !== mac.readUInt32BE(2);
    return b.guest !== this.rxGuest;
  }

  /** The IPv4 reassembly bounds in force. */
  get reassemblyLimits(): { maxDatagrams: number; maxDatagramsPerSource: number } {
    return this.reassembler.limits;
  }

  /** The MAC the gateway uses for its own frames. */
  get gatewayMac(): Buffer {
    return virtualMac(this.config.host);
  }

  /**
   * Whether the frames we send may carry offload marks (stack/wire/frame-offload.ts):
   * on when every other port of the hub accepts them (an offloading TAP). TCP then
   * leaves checksums partial and sends super frames of up to `tsoMaxBytes` of payload.
   */
  setOffloads(on: boolean): void {
    this.offloads = on;
    this.segmentOffload.maxBytes = on ? tsoMaxBytes : 0;
  }

  /** Takes a batch of frames that hub port `port` sent; returns the frames to send back. */
  input(frames: readonly Buffer[], port = 0): Buffer[] {
    const out: Buffer[] = [];
    this.rxNow = this.clock.now();
    this.rxPort = port;
    for (const frame of frames) {
      this.counters.rxFrames++;
      const mark = offloadOf(frame);
      this.rxTrusted = mark !== undefined;
      this.inputFrame(mark?.tail ? joinTail(frame) : frame, out);
    }
    this.rxTrusted = false;
    this.counters.txFrames += out.length;
    return out;
  }

  /** When `onTimer` next has work, in clock time; undefined when nothing is pending. */
  nextDeadline(): number | undefined {
    const a = this.reassembler.nextDeadline();
    const b = this.tcp.nextDeadline();
    const c = this.ipv6?.nextDeadline();
    let d = a;
    if (b !== undefined && (d === undefined || b < d)) d = b;
    if (c !== undefined && (d === undefined || c < d)) d = c;
    return d;
  }

  onTimer(): void {
    const now = this.clock.now();
    this.reassembler.expire(now);
    this.ipv6?.onTimer(now);
    this.tcp.onTimer();
  }

  /** Whether the frame's destination MAC (its first six bytes) is ours or broadcast. */
  private isForUs(frame: Buffer): boolean {
    if (isBroadcastMac(frame)) return true;
    // IPv6 multicast (33:33:...): the gateway sorts out its groups
    if (frame[0] === 0x33 && frame[1] === 0x33 && this.ipv6 !== undefined) return true;
    for (const m of this.ownMacs) if (sameMac(m, frame)) return true;
    return false;
  }

  private inputFrame(frame: Buffer, out: Buffer[]): void {
    // The header is read in place, not decoded into a record: every guest frame passes
    // here, and the record (three views, two objects) was a large part of what the
    // receive path allocated per frame. Tagged and 802.3 frames, dropped either way,
    // go through the decoder for its reasons.
    if (frame.length < ethernetHeaderLength) return this.drops.drop("ethernet-truncated");
    const ethertype = ((frame[12] as number) << 8) | (frame[13] as number);
    if (ethertype === EtherType.vlan || ethertype < 0x0600) {
      const eth = decodeEthernet(frame);
      return this.drops.drop(eth.ok ? "ethernet-vlan-tagged" : eth.reason);
    }
    // the destination MAC is the frame's first six bytes
    if (!this.isForUs(frame)) {
      this.counters.ignored++;
      return;
    }
    const src = frame.subarray(6, 12);
    this.rxGuest = this.guests.identify(this.rxPort, src, this.rxNow);
    if (this.rxGuest === 0) return this.drops.drop("guest-identity-limit");
    if (ethertype === EtherType.ipv4 || ethertype === EtherType.arp) {
      if (!this.ipv4On) return this.drops.drop("ipv4-off");
      if (ethertype === EtherType.ipv4) return this.inputIpv4(src, frame.subarray(ethernetHeaderLength), out);
      return this.inputArp(src, frame.subarray(ethernetHeaderLength), out);
    }
    if (ethertype === EtherType.ipv6) {
      if (this.ipv6 === undefined) return this.drops.drop("ipv6-off");
      return this.ipv6.input(
        src,
        frame.subarray(ethernetHeaderLength),
        this.rxGuest,
        this.rxNow,
        this.rxTrusted,
        out,
      );
    }
    this.drops.drop("ethernet-unsupported-ethertype");
  }

  private inputArp(srcMac: Buffer, payload: Buffer, out: Buffer[]): void {
    const r = decodeArp(payload);
    if (!r.ok) return this.drops.drop(r.reason);
    const arp = r.value;
    if (arp.senderIp !== 0 && this.inNetwork(arp.senderIp)) {
      // a guest may not point the ARP table at itself for an address another guest holds
      if (this.ownedByOther(arp.senderIp, srcMac)) this.drops.drop("arp-spoofed-sender");
      else this.arp.learn(arp.senderIp, arp.senderMac);
    }
    if (arp.op !== ArpOp.request) return;
    const mac = this.owned.get(arp.targetIp);
    if (mac === undefined) {
      this.counters.ignored++;
      return;
    }
    const reply = Buffer.allocUnsafe(ethernetHeaderLength + arpPacketLength);
    encodeArp(
      {
        op: ArpOp.reply,
        senderMac: mac,
        senderIp: arp.targetIp,
        targetMac: arp.senderMac,
        targetIp: arp.senderIp,
      },
      reply,
      ethernetHeaderLength,
    );
    encodeEthernet(
      { dst: srcMac, src: mac, ethertype: EtherType.arp, payload: reply.subarray(ethernetHeaderLength) },
      reply,
    );
    this.counters.arpReplies++;
    out.push(reply);
  }

  private inNetwork(ip: number): boolean {
    return (
      (ip & this.config.mask) >>> 0 === this.config.net && ip !== this.broadcast && ip !== this.config.net
    );
  }

  private inputIpv4(srcMac: Buffer, payload: Buffer, out: Buffer[]): void {
    const r = decodeIpv4(payload);
    if (!r.ok) return this.drops.drop(r.reason);
    const ip = r.value;
    const ourMac = this.owned.get(ip.dst);
    const broadcast = ip.dst === this.broadcast || ip.dst === 0xffffffff;
    if (ourMac === undefined && broadcast && ip.protocol !== IpProto.udp) {
      this.counters.ignored++;
      return;
    }
    const src = ip.src;
    if (src === 0) {
      // only a DHCP client without an address yet: UDP to port 67, first fragment
      if (ip.protocol !== IpProto.udp || ip.fragmentOffset !== 0 || ip.payload.length < 4)
        return this.drops.drop("ipv4-source-unspecified");
      if (ip.payload.readUInt16BE(2) !== 67 || (ip.dst !== 0xffffffff && ip.dst !== this.config.host))
        return this.drops.drop("ipv4-source-unspecified");
    } else {
      if ((src & this.config.mask) >>> 0 !== this.config.net)
        return this.drops.drop("ipv4-source-off-subnet");
      if (src === this.broadcast || src === this.config.net) return this.drops.drop("ipv4-source-broadcast");
      if (this.owned.has(src)) return this.drops.drop("ipv4-source-own-address");
      if (!this.ownsAddress(src, srcMac)) return this.drops.drop("ipv4-spoofed-source");
      this.arp.learn(src, srcMac);
    }
    if (isIpv4Multicast(ip.dst)) return this.drops.drop("ipv4-multicast-not-forwarded");
    // a whole datagram (nearly all of them) needs no reassembler and no record of its
    // own; pending fragments still expire on the stack's timer (nextDeadline)
    const whole =
      ip.fragmentOffset === 0 && !ip.moreFragments
        ? ip
        : this.reassembler.push(
            {
              src: ip.src,
              dst: ip.dst,
              id: ip.id,
              protocol: ip.protocol,
              fragmentOffset: ip.fragmentOffset,
              moreFragments: ip.moreFragments,
              payload: ip.payload,
              headerLength: 20 + ip.options.length,
              guest: this.rxGuest,
            },
            this.rxNow,
          );
    if (whole === undefined) return;
    if (whole.protocol === IpProto.udp) return this.inputUdp(srcMac, whole.src, whole.dst, whole.payload);
    if (whole.protocol === IpProto.tcp) {
      if (broadcast) return this.drops.drop("tcp-broadcast");
      const t = decodeTcp(whole.payload, whole, this.rxTrusted ? checksumOffloaded : checksumFull);
      if (!t.ok) return this.drops.drop(t.reason);
      return this.tcp.input(whole.src, whole.dst, t.value, this.rxGuest);
    }
    if (ourMac === undefined) {
      if (whole.protocol === IpProto.icmp && !broadcast)
        return this.inputOutsideIcmp(this.rxGuest, whole.src, whole.dst, whole.payload);
      return this.drops.drop("ipv4-unrouted");
    }
    if (whole.protocol === IpProto.icmp)
      return this.inputIcmp(srcMac, ourMac, whole.src, whole.dst, whole.payload, out);
    this.drops.drop("ipv4-unsupported-protocol");
  }

  private inputUdp(srcMac: Buffer, src: number, dst: number, payload: Buffer): void {
    const r = decodeUdp(payload, { src, dst }, this.rxTrusted ? checksumOffloaded : checksumFull);
    if (!r.ok) return this.drops.drop(r.reason);
    const u = r.value;
    if (!this.hooks.udp) return this.drops.drop("udp-no-handler");
    this.hooks.udp({
      srcMac,
      guest: this.rxGuest,
      src,
      srcPort: u.srcPort,
      dst,
      dstPort: u.dstPort,
      payload: u.payload,
      quote: () => this.quote(src, dst, IpProto.udp, payload),
    });
  }

  /** What an ICMP error quotes of a datagram: its IPv4 header (rebuilt, as it may have been reassembled) and 8 bytes. */
  private quote(src: number, dst: number, protocol: number, payload: Buffer): Buffer {
    return encodeIpv4Quote(src, dst, protocol, payload.subarray(0, 8), payload.length);
  }

  /** Sends a UDP datagram to a guest; false when the guest's MAC is unknown (an ARP request goes out instead). */
  sendUdp(d: UdpToGuest): boolean {
    const dstMac = d.dstMac ?? (d.dst === 0xffffffff ? BROADCAST_MAC : this.arp.lookup(d.dst));
    if (dstMac === undefined) {
      this.resolve(d.dst);
      this.drops.drop("udp-guest-mac-unknown");
      return false;
    }
    const dgram = Buffer.allocUnsafe(udpHeaderLength + d.payload.length);
    encodeUdp({ srcPort: d.srcPort, dstPort: d.dstPort, payload: d.payload }, dgram, 0, {
      src: d.src,
      dst: d.dst,
    });
    this.emit(
      this.output.frames({
        srcMac: this.owned.get(d.src) ?? this.gatewayMac,
        dstMac,
        src: d.src,
        dst: d.dst,
        protocol: IpProto.udp,
        payload: dgram,
      }),
    );
    return true;
  }

  private inputOutsideIcmp(guest: number, src: number, dst: number, payload: Buffer): void {
    const r = decodeIcmp(payload);
    if (!r.ok) return this.drops.drop(r.reason);
    const m = r.value;
    if (m.kind !== "echo-request") return this.drops.drop("icmp-not-forwarded");
    if (!this.hooks.echo) return this.drops.drop("icmp-no-handler");
    this.hooks.echo({ guest, src, dst, id: m.id, seq: m.seq, payload: m.payload });
  }

  /** An echo reply to a guest, from `src` (an outside address that answered). */
  sendEchoReply(e: { src: number; dst: number; id: number; seq: number; payload: Buffer }): void {
    const dstMac = this.arp.lookup(e.dst);
    if (dstMac === undefined) return this.drops.drop("icmp-guest-mac-unknown");
    const msg = Buffer.allocUnsafe(icmpHeaderLength + e.payload.length);
    encodeIcmp({ kind: "echo-reply", code: 0, id: e.id, seq: e.seq, payload: e.payload }, msg);
    this.emit(
      this.output.frames({
        srcMac: this.gatewayMac,
        dstMac,
        src: e.src,
        dst: e.dst,
        protocol: IpProto.icmp,
        payload: msg,
      }),
    );
  }

  /** Frames TCP segments for guests; segments to a guest whose MAC is unknown are dropped after an ARP request. */
  private sendTcp(segments: TcpOutput[]): void {
    const frames: Buffer[] = [];
    const offloads = this.offloads;
    for (const o of segments) {
      const { src, dst, seg, gsoSize } = o;
      if (o.dst6 !== undefined) {
        const f = this.tcpFrame6(o, offloads);
        if (f !== undefined) frames.push(f);
        continue;
      }
      const dstMac = this.arp.lookup(dst);
      if (dstMac === undefined) {
        this.resolve(dst);
        this.drops.drop("tcp-guest-mac-unknown");
        continue;
      }
      const srcMac = this.owned.get(src) ?? this.gatewayMac;
      let frame: Buffer;
      let tail: Buffer | undefined;
      if (!offloads && gsoSize !== undefined) {
        this.drops.drop("tcp-super-frame-without-offload"); // cannot happen: segmentOffload is 0
        continue;
      }
      // Without offloads every segment goes whole; with them, a small one (an ACK, a
      // request) does too: summing its few bytes costs less than the mark and the
      // port's work for it.
      if (!offloads || (gsoSize === undefined && seg.payload.length < tailMinBytes)) {
        frame = this.output.tcp(srcMac, dstMac, src, dst, seg, checksumFull);
      } else {
        // Towards peers that take offloads (an offloading TAP, QEMU sockets with the
        // addon): the checksum stays partial (the pseudo-header sum) and a large
        // payload stays a tail, written after the headers without a copy.
        seg.checksum = pseudoHeaderSum(src, dst, IpProto.tcp, tcpEncodingLength(seg));
        if (seg.payload.length >= tailMinBytes) {
          tail = seg.payload;
          seg.payload = EMPTY;
        }
        frame = this.output.tcp(srcMac, dstMac, src, dst, seg, checksumOffloaded, tail);
        markOffload(frame, {
          checksum: "partial",
          csumStart: ethernetHeaderLength + ipv4HeaderLength,
          csumOffset: tcpChecksumOffset,
          gsoSize: gsoSize ?? 0,
          tail,
        });
      }
      frames.push(frame);
    }
    this.emit(frames);
  }

  /** The frame of an IPv6 segment for a guest (as `sendTcp` does IPv4's); undefined when dropped. */
  private tcpFrame6(o: TcpOutput, offloads: boolean): Buffer | undefined {
    const v6 = this.ipv6;
    const src = o.src6 as Ipv6Address;
    const dst = o.dst6 as Ipv6Address;
    const seg = o.seg;
    if (v6 === undefined) return undefined;
    if (!offloads && o.gsoSize !== undefined) {
      this.drops.drop("tcp-super-frame-without-offload");
      return undefined;
    }
    let frame: Buffer | undefined;
    if (!offloads || (o.gsoSize === undefined && seg.payload.length < tailMinBytes)) {
      frame = v6.tcpFrame(src, dst, seg, checksumFull);
    } else {
      const ph = pseudoHeader6(src, dst);
      seg.checksum = pseudoHeaderSum(ph.src, ph.dst, IpProto.tcp, tcpEncodingLength(seg));
      let tail: Buffer | undefined;
      if (seg.payload.length >= tailMinBytes) {
        tail = seg.payload;
        seg.payload = EMPTY;
      }
      frame = v6.tcpFrame(src, dst, seg, checksumOffloaded, tail);
      if (frame !== undefined)
        markOffload(frame, {
          checksum: "partial",
          csumStart: ethernetHeaderLength + ipv6HeaderLength,
          csumOffset: tcpChecksumOffset,
          gsoSize: o.gsoSize ?? 0,
          tail,
        });
    }
    if (frame === undefined) this.drops.drop("tcp-guest-mac-unknown");
    return frame;
  }

  /** Sends a UDP datagram to a guest over IPv6; false when IPv6 is off or the guest's MAC is unknown. */
  sendUdp6(d: UdpToGuest6): boolean {
    return this.ipv6?.sendUdp6(d) ?? false;
  }

  /** An ICMPv6 echo reply to a guest, from an outside address that answered. */
  sendEchoReply6(e: EchoReplyToGuest6): boolean {
    return this.ipv6?.sendEchoReply6(e) ?? false;
  }

  /** Tells a guest, from `from`, what became of the packet `quote` quotes (GuestUdp6.quote()). */
  sendIcmp6Error(to: Ipv6Address, from: Ipv6Address, e: Icmp6ErrorKind, quote: Buffer): boolean {
    return this.ipv6?.sendIcmp6Error(to, from, e, quote) ?? false;
  }

  /** The IPv6 neighbour table: guest addresses, their MACs and guests. */
  neighbours6(): Ipv6NeighbourEntry[] {
    return this.ipv6?.neighbours.entries() ?? [];
  }

  /** Tells a guest its datagram could not be delivered; `from` is the address it was sent to. */
  sendUnreachable(to: number, from: number, code: number, quote: Buffer): void {
    this.sendIcmpError(to, from, { kind: "dest-unreachable", code, nextHopMtu: 0, payload: quote });
  }

  /** Tells a guest its datagram's TTL ran out on the host's path; `from` is the router that said so. */
  sendTimeExceeded(to: number, from: number, code: number, quote: Buffer): void {
    this.sendIcmpError(to, from, { kind: "time-exceeded", code, payload: quote });
  }

  private sendIcmpError(to: number, from: number, m: IcmpDestUnreachable | IcmpTimeExceeded): void {
    const dstMac = this.arp.lookup(to);
    if (dstMac === undefined) return this.drops.drop("icmp-guest-mac-unknown");
    const msg = Buffer.allocUnsafe(icmpHeaderLength + m.payload.length);
    encodeIcmp(m, msg);
    this.emit(
      this.output.frames({
        srcMac: this.owned.get(from) ?? this.gatewayMac,
        dstMac,
        src: from,
        dst: to,
        protocol: IpProto.icmp,
        payload: msg,
      }),
    );
  }

  /** Asks the LAN who has `ip` (for guests we must reach but have not heard from). */
  private resolve(ip: number): void {
    if (!this.inNetwork(ip)) return;
    const req = Buffer.allocUnsafe(ethernetHeaderLength + arpPacketLength);
    encodeArp(
      {
        op: ArpOp.request,
        senderMac: this.gatewayMac,
        senderIp: this.config.host,
        targetMac: Buffer.alloc(6),
        targetIp: ip,
      },
      req,
      ethernetHeaderLength,
    );
    encodeEthernet(
      {
        dst: BROADCAST_MAC,
        src: this.gatewayMac,
        ethertype: EtherType.arp,
        payload: req.subarray(ethernetHeaderLength),
      },
      req,
    );
    this.emit([req]);
  }

  private emit(frames: Buffer[]): void {
    if (frames.length === 0) return;
    this.counters.txFrames += frames.length;
    this.hooks.emit(frames);
  }

  private inputIcmp(
    guestMac: Buffer,
    ourMac: Buffer,
    src: number,
    dst: number,
    payload: Buffer,
    out: Buffer[],
  ): void {
    const r = decodeIcmp(payload);
    if (!r.ok) return this.drops.drop(r.reason);
    const m = r.value;
    if (m.kind !== "echo-request") {
      this.counters.ignored++;
      return;
    }
    const reply = Buffer.allocUnsafe(icmpHeaderLength + m.payload.length);
    encodeIcmp({ kind: "echo-reply", code: 0, id: m.id, seq: m.seq, payload: m.payload }, reply);
    for (const frame of this.output.frames({
      srcMac: ourMac,
      dstMac: guestMac,
      src: dst,
      dst: src,
      protocol: IpProto.icmp,
      payload: reply,
    })) {
      out.push(frame);
    }
    this.counters.echoReplies++;
  }
}
