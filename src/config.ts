/**
 * The one configuration shape. The CLI (argv and config file, QEMU grammar) produces
 * it; the composition root (src/usernet.ts) consumes it. Values here are already
 * validated and defaulted: addresses are dotted-quad strings, ports numbers.
 */

/** an IPv4 endpoint; host "" means "any address" where binding */
export interface InetAddress {
  host: string;
  port: number;
}

export interface HostForward {
  proto: "tcp" | "udp";
  /** "" binds all addresses (QEMU's default) */
  hostAddr: string;
  hostPort: number;
  /** "" means the first DHCP address */
  guestAddr: string;
  guestPort: number;
  /**
   * the guest sees the real client's address and port instead of the gateway's;
   * absent: the netdev's `preserveSource` (QEMU's way, the gateway, by default)
   */
  preserveSource?: boolean;
}

export interface GuestForward {
  proto: "tcp";
  server: string;
  port: number;
  target: { kind: "cmd"; command: string } | { kind: "tcp"; host: string; port: number };
}

export interface UserNetdevConfig {
  type: "user";
  id: string;
  hub: number;
  /** network address, e.g. "10.0.2.0" */
  net: string;
  prefixLength: number;
  /** gateway/host address, default net + 2 */
  host: string;
  /** first DHCP address, default net + 15 */
  dhcpStart: string;
  /** pool size, default 16 */
  dhcpCount: number;
  /** DNS server address, default net + 3 */
  dns: string;
  dnsSearch: string[];
  domainName?: string;
  hostname?: string;
  restrict: boolean;
  tftp?: string;
  tftpServerName?: string;
  bootfile?: string;
  smb?: string;
  /** default net + 4 */
  smbServer: string;
  hostfwd: HostForward[];
  /** default for forwards that do not say (hostfwd-source=preserve); absent = gateway */
  preserveSource?: boolean;
  guestfwd: GuestForward[];
  /** upstream resolvers "IP:PORT"; empty means /etc/resolv.conf */
  dnsUpstream: InetAddress[];
  /** false: nothing answers DNS at `dns` and DHCP offers no DNS server (slirp4netns --disable-dns); absent = on */
  dnsForward?: boolean;
  hostLoopback: boolean;
  outboundAddr?: string;
  /** the host IPv6 address outgoing IPv6 sockets bind to (outbound-addr6=, not in QEMU) */
  outboundAddr6?: string;
  mtu: number;
  /** TCP connections in the whole stack (TIME_WAIT not counted); absent = 65,536 */
  maxFlows?: number;
  /** TCP connections one guest (hub port and MAC) may hold; absent = 32,768 (at most maxFlows) */
  maxFlowsPerGuest?: number;
  /** host UDP sockets of the NAT in all (least recently used evicted); absent = 4,096 */
  udpMaxSockets?: number;
  /** host UDP sockets one guest may hold (more refused); absent = 1,024 */
  udpMaxSocketsPerGuest?: number;
  /** ping sockets (guest echo ids) in all (least recently used evicted); absent = 1,024 */
  icmpMaxIds?: number;
  /** ping sockets one guest may hold (more refused); absent = 64 */
  icmpMaxIdsPerGuest?: number;
  /** DNS queries waiting for upstream in all; absent = 256 */
  dnsMaxQueries?: number;
  /** DNS queries from one guest waiting for upstream; absent = 64 */
  dnsMaxQueriesPerGuest?: number;
  /** TFTP transfers at once in all; absent = 64 */
  tftpMaxSessions?: number;
  /** TFTP transfers one guest may run at once; absent = 8 */
  tftpMaxSessionsPerGuest?: number;
  /** IPv4 datagrams being reassembled in all (the oldest evicted); absent = 64 */
  reasmMaxDatagrams?: number;
  /** IPv4 datagrams one guest may have being reassembled; absent = 16 */
  reasmMaxDatagramsPerGuest?: number;
  /** bytes of guest TCP data buffered towards the host in all; absent = 512 MiB */
  bufferMaxBytes?: number;
  /** the same for one guest; absent = 128 MiB (at most bufferMaxBytes) */
  bufferMaxBytesPerGuest?: number;
  /** guests (MACs) one hub port may carry (stack/guest-bounds.ts); absent = 64 */
  maxGuestsPerPort?: number;
  /** false: no IPv4 side (QEMU ipv4=off); absent = on */
  ipv4?: boolean;
  /** the IPv6 side (QEMU ipv6=on, the CLI's default); absent = off */
  ipv6?: UserNetdevIpv6;
  /**
   * nat64=on: the /96 prefix ("64:ff9b::" by default, nat64-prefix=) whose addresses
   * stand for IPv4 ones: DNS64 synthesizes AAAA records under it and the NAT
   * translates guest IPv6 traffic to it into IPv4; absent = off
   */
  nat64Prefix?: string;
  /**
   * dhcpv6=: what the DHCPv6 server offers on the IPv6 side, and so the RA's M/O
   * flags: "stateful" (addresses and DNS; M=1 O=1), "stateless" (DNS and search list
   * only; M=0 O=1) or "off" (no DHCPv6; M=0 O=0); absent = stateful
   */
  dhcpv6?: "stateful" | "stateless" | "off";
}

/** The IPv6 side of a user netdev, as text (RFC 5952). */
export interface UserNetdevIpv6 {
  /** the prefix, host bits clear, e.g. "fec0::" */
  prefix: string;
  /** e.g. 64 */
  prefixLength: number;
  /** the gateway/host address, default prefix::2 */
  host: string;
  /** the DNS address, default prefix::3 */
  dns: string;
}

export interface SocketNetdevConfig {
  type: "socket";
  id: string;
  hub: number;
  /** listen: accept many QEMU clients; connect: one outgoing stream with reconnect */
  mode: "listen" | "connect" | "mcast" | "udp";
  /** listen/connect: the TCP address; mcast: group and port; udp: remote peer */
  addr: InetAddress;
  /** mcast: local interface address; udp: local bind address and port */
  localAddr?: InetAddress;
}

export interface StreamNetdevConfig {
  type: "stream";
  id: string;
  hub: number;
  server: boolean;
  addr: { type: "inet"; host: string; port: number } | { type: "unix"; path: string };
  /** client side: seconds between reconnect attempts (0 = QEMU's default of none; we still back off) */
  reconnect: number;
}

export interface DgramNetdevConfig {
  type: "dgram";
  id: string;
  hub: number;
  local?: { type: "inet"; host: string; port: number } | { type: "unix"; path: string };
  remote?: { type: "inet"; host: string; port: number } | { type: "unix"; path: string };
}

export interface TapNetdevConfig {
  type: "tap";
  id: string;
  hub: number;
  /** interface name; "" lets the kernel pick (tap0, tap1, ...) */
  ifname: string;
  /** create the TAP inside this network namespace (/proc/PID/ns/net, /var/run/netns/NAME) */
  netns?: string;
  /** join this user namespace first (rootless); only with netns */
  userns?: string;
  /** vnet_hdr=off: plain frames, no checksum offload or TSO; absent = on */
  offloads?: boolean;
  /** script=: run with the interface name once the device exists; absent = none */
  script?: NetworkScript;
  /** downscript=: run with the interface name before the device goes; absent = none */
  downscript?: NetworkScript;
}

/** QEMU's TAP ifup/ifdown script (ports/tap-script.ts) */
export interface NetworkScript {
  path: string;
  /** a default (/etc/qemu-ifup, /etc/qemu-ifdown): run only when the file exists */
  ifExists?: boolean;
}

export interface VxlanNetdevConfig {
  type: "vxlan";
  id: string;
  hub: number;
  /** VXLAN network identifier, 0..16777215 */
  vni: number;
  /** unicast VTEPs that get every flooded frame (remote=, repeatable) */
  remotes: InetAddress[];
  /** a multicast group (group=) instead of remotes, port = dstport */
  group?: InetAddress;
  /** the underlay interface (dev=): joins the group there; its MTU is the advice's base */
  dev?: string;
  /** bind address and UDP port (local=IP[:PORT], port default dstport) */
  local: InetAddress;
  /** UDP port of the peers (dstport=, default 4789) */
  dstport: number;
  /** seconds a learned MAC lives without being seen (ageing=, default 300) */
  ageingSeconds?: number;
  /** learned MACs at most (maxaddress=, default 4096) */
  maxMacs?: number;
}

export interface VdeNetdevConfig {
  type: "vde";
  id: string;
  hub: number;
  /** join: a port on the vde_switch at `dir` (sock=); listen: usernet is the switch at `dir` (listen=) */
  mode: "join" | "listen";
  /** the switch directory (holding its `ctl` socket) */
  dir: string;
  /** join: the switch port asked for; absent = any */
  port?: number;
  /** join: group (name or number) of our data socket */
  group?: string;
  /** join: mode bits of our data socket; absent = 0o700 */
  permissions?: number;
}

/** `-netdev websocket`: browser VMs (v86, JSLinux, jor1k) and container2wasm over WebSocket */
export interface WebsocketNetdevConfig {
  type: "websocket";
  id: string;
  hub: number;
  /** "" host: every address */
  listen: { host: string; port: number };
  /** the only request path accepted; absent = any */
  path?: string;
  /** raw: one frame per binary message; qemu: QEMU's length-prefixed stream */
  framing: "raw" | "qemu";
  /** Origin values a browser page may connect from ("*" = any); upgrades without Origin are accepted */
  origins: string[];
  /** file holding the token every client must present */
  tokenFile?: string;
  /** PEM certificate and key: serve wss:// */
  cert?: string;
  key?: string;
}

export type NetdevConfig =
  | UserNetdevConfig
  | WebsocketNetdevConfig
  | SocketNetdevConfig
  | StreamNetdevConfig
  | DgramNetdevConfig
  | TapNetdevConfig
  | VdeNetdevConfig
  | VxlanNetdevConfig;

/** Where the management API listens. */
export interface ApiConfig {
  /** unix socket path (mode 0600) */
  socket?: string;
  /** TCP listener; only together with `token` */
  listen?: InetAddress;
  /** the bearer token TCP clients must send */
  token?: string;
  /** --dashboard: the web page (src/api/dashboard.ts) on its own TCP listener, with `token` or a random one */
  dashboard?: InetAddress;
}

export interface Config {
  netdevs: NetdevConfig[];
  /** slirp4netns-compatible JSON API (add/list/remove_hostfwd) unix socket path; undefined = none */
  slirp4netnsApiSocket?: string;
  /** the management API (src/api); undefined = none */
  api?: ApiConfig;
  stateDir?: string;
  /** --sandbox: confine the process once started (src/sandbox.ts); absent = off */
  sandbox?: boolean;
  logLevel: "debug" | "info" | "warn" | "error";
  /** --log-format: every log line as text (default) or JSON */
  logFormat?: "text" | "json";
}
