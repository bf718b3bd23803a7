/** The --help text: every option, its accepted form and an example. */
export const usageText = `usage: usernet [OPTION]...

A user-mode network stack (QEMU's slirp networking as a service). QEMU guests and
other peers plug into hubs (virtual LANs); a -netdev user on a hub gives them DHCP,
DNS, TFTP, SMB, NAT to the host's network and port forwards. Options use QEMU's
grammar: TYPE,key=value,...; ",," is a comma inside a value; booleans are on/off
(also yes/no, true/false). -name and --name are the same option, and
--name=VALUE works as well as --name VALUE.

Without any -netdev/-net option usernet runs hub 0 with a default user network
(user0, 10.0.2.0/24) and a unix stream listener (unix0) at
$XDG_RUNTIME_DIR/usernet/hub0.sock (else $TMPDIR/usernet-UID/hub0.sock; the
directory must be ours with mode 0700), and prints the QEMU options that attach a
guest. TCP listeners (listen=HOST:PORT) are reachable by every local user.

Netdevs (every -netdev takes id=ID and hubid=N, default hub 0):
  -netdev user,id=ID[,key=value...]     a virtual network with its services
      net=ADDR[/PREFIX|/NETMASK]        network (10.0.2.0/24); no prefix: classful, as QEMU
      host=ADDR                         gateway, reaches the host (net+2: 10.0.2.2)
      dns=ADDR                          DNS forwarder (net+3: 10.0.2.3)
      dhcpstart=ADDR dhcpcount=N        DHCP pool (10.0.2.15, 16 addresses)
      dnssearch=DOMAIN                  DHCP search list (repeatable)
      domainname=DOMAIN hostname=NAME   DHCP domain name and guest host name
      restrict=on|off                   isolate the guest from the host network (off)
      tftp=DIR tftp-server-name=NAME bootfile=FILE     TFTP root and PXE boot file
      smb=DIR smbserver=ADDR            SMB share served by smbd (net+4: 10.0.2.4)
      hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport   (repeatable)
                                        host port 0 = any free port; empty guestaddr =
                                        the first DHCP address; IPv6 in brackets:
                                        hostfwd=tcp:[::1]:2222-[fec0::15]:22 (empty
                                        guestaddr: the guest's first IPv6 address)
      hostfwd-source=preserve|gateway   forwarded clients reach the guest from their own
                                        address and port (preserve), or from the gateway
                                        like QEMU (gateway, the default); loopback clients
                                        always come from the gateway
      guestfwd=[tcp]:[server]:port-cmd:COMMAND                         (repeatable)
      guestfwd=[tcp]:[server]:port-tcp:HOST:PORT                       (repeatable)
      ipv4=on|off ipv6=on|off           the IPv4 and IPv6 sides (both on; as QEMU, ipv6=on
                                        alone turns IPv4 off, ipv4=on alone IPv6 off)
      ipv6-net=PREFIX[/LEN]             IPv6 prefix announced for SLAAC (fec0::/64; also
                                        ipv6-prefix=PREFIX ipv6-prefixlen=LEN)
      ipv6-host=ADDR ipv6-dns=ADDR      gateway and DNS on IPv6 (prefix::2, prefix::3)
      dns-upstream=IP[:PORT]            resolvers to forward to (repeatable; default
                                        /etc/resolv.conf); IPv6: [::1]:5353
      dhcpv6=stateful|stateless|off     what DHCPv6 offers: addresses and DNS (stateful),
                                        DNS only (stateless), nothing; sets the RA's M/O
      nat64=on|off nat64-prefix=P/96    NAT64 and DNS64 under 64:ff9b::/96 (off)
      host-loopback=on|off              may the guest reach the host's 127.0.0.1 via
                                        the gateway (on)
      outbound-addr=ADDR                source address for NAT'ed connections
      outbound-addr6=ADDR               source address for NAT'ed IPv6 connections
      mtu=N                             68..65520 (1500)
      max-flows=N                       TCP connections in all, TIME_WAIT not
                                        counted (65536)
      max-flows-per-guest=N             TCP connections per guest address (32768)
      udp-max-sockets=N                 host UDP sockets in all, least recently used
                                        closed first (4096)
      udp-max-sockets-per-guest=N       host UDP sockets per guest (1024)
      icmp-max-ids=N                    ping ids (sockets) in all (1024)
      icmp-max-ids-per-guest=N          ping ids per guest (64)
      dns-max-queries=N                 DNS queries waiting upstream in all (256)
      dns-max-queries-per-guest=N       DNS queries waiting upstream per guest (64)
      tftp-max-sessions=N               TFTP transfers in all (64)
      tftp-max-sessions-per-guest=N     TFTP transfers per guest (8)
    e.g. -netdev user,id=n0,net=192.168.76.0/24,hostfwd=tcp::2222-:22,tftp=/srv/tftp,bootfile=pxelinux.0

  -netdev socket,id=ID,listen=[HOST]:PORT            QEMU clients connect here
  -netdev socket,id=ID,connect=HOST:PORT             connect to a QEMU listen=
  -netdev socket,id=ID,mcast=GROUP:PORT[,localaddr=ADDR]   multicast LAN (224.0.0.0/4)
  -netdev socket,id=ID,udp=HOST:PORT,localaddr=[HOST]:PORT one UDP peer
    e.g. -netdev socket,id=s0,listen=127.0.0.1:8010

  -netdev stream,id=ID,server=on|off,addr.type=inet,addr.host=HOST,addr.port=PORT
  -netdev stream,id=ID,server=on|off,addr.type=unix,addr.path=PATH
      reconnect=SECONDS                 client only: retry interval
    e.g. -netdev stream,id=st0,server=on,addr.type=unix,addr.path=/run/user/1000/vm.sock

  -netdev dgram,id=ID,local.type=inet,local.host=HOST,local.port=PORT,
                      remote.type=inet,remote.host=HOST,remote.port=PORT
      a multicast remote.host makes a multicast LAN (local.* then optional)
    e.g. -netdev dgram,id=d0,local.type=inet,local.host=127.0.0.1,local.port=8011,remote.type=inet,remote.host=127.0.0.1,remote.port=8012

  -netdev tap,id=ID[,ifname=NAME][,netns=PATH|NAME][,userns=PATH][,vnet_hdr=on|off]
             [,script=FILE|no][,downscript=FILE|no]
      a Linux TAP device (native addon; root, or /dev/net/tun access) whose kernel
      stack joins the hub; netns= creates it inside another network namespace
      (/proc/PID/ns/net, or a name from \`ip netns add\`), userns= joins that user
      namespace first (rootless). Addresses, routes and MTU are yours to set with ip.
      vnet_hdr=on (the default) carries a virtio-net header with checksum offload
      and TSO; vnet_hdr=off gives plain frames.
      script=FILE|no, downscript=FILE|no   QEMU's ifup/ifdown scripts: FILE IFNAME runs
      once the device exists (a non-zero exit fails the netdev) and before it goes
      (also on SIGINT/SIGTERM), 30 s at most; defaults /etc/qemu-ifup and
      /etc/qemu-ifdown where they exist, without netns= only.
    e.g. -netdev tap,id=t0,ifname=tap0,netns=ns1

  -netdev vde,id=ID,sock=DIR[,port=N][,group=GROUP][,mode=OCTAL]
      join the vde_switch whose directory is DIR, as QEMU's -netdev vde (native
      addon): port= asks for a switch port, group= and mode= (default 0700) open
      usernet's data socket to a switch run by another user
  -netdev vde,id=ID,listen=DIR
      be the VDE switch at DIR (made 0700, ctl socket 0600): each QEMU
      -netdev vde,sock=DIR or vde_plug DIR is a port on the hub
    e.g. -netdev vde,id=v0,listen=/run/user/1000/vde.sw
  -netdev websocket,id=ID,listen=[HOST]:PORT[,path=/PATH][,framing=raw|qemu]
                  [,origin=ORIGIN...][,token-file=FILE][,cert=FILE,key=FILE]
      a WebSocket server for VMs in a browser: each connection is a hub port.
      framing=raw (default): one Ethernet frame per binary message (v86
      network_relay_url / net_device.relay_url, JSLinux net_url, jor1k relay);
      framing=qemu: QEMU's length-prefixed stream (container2wasm net=delegate=ws://).
      origin= lets pages from that origin connect (repeatable; * = any page); by
      default no web page may, while programs (no Origin header) may. token-file=:
      clients must send the token (?token=TOKEN or Authorization: Bearer TOKEN).
      cert= and key= (PEM): wss:// instead of ws://.
    e.g. -netdev websocket,id=w0,listen=127.0.0.1:8086,origin=http://localhost:8000
  -netdev vxlan,id=ID,vni=N,remote=IP[:PORT]|group=MCAST[,dev=IF],local=IP[:PORT]
               [,dstport=4789][,ageing=SECONDS][,maxaddress=N]
      a VXLAN tunnel (RFC 7348) to Linux vxlan devices or another usernet: floods to
      every remote= (repeatable) or the group, learns which VTEP holds each MAC
      (ageing 300 s, 4096 MACs); local= is where usernet binds (port default
      dstport). Linux's own default port is 8472: give it dstport 4789. VXLAN adds
      50 bytes: give the user netdev mtu=1450 on a 1500-byte underlay.
    e.g. -netdev vxlan,id=vx0,vni=42,remote=192.0.2.1,local=192.0.2.2

  -net TYPE,[vlan=N][,name=ID][,key=value...]
      legacy spelling of -netdev: vlan= is the hub, name= the id (default TYPE.N)
    e.g. -net user,vlan=1,hostfwd=tcp::8080-:80

  -redir [tcp|udp]:hostport:[guestaddr]:guestport
      legacy port forward onto the first user netdev of hub 0 (one is created if
      there is none)
    e.g. -redir tcp:2222::22

Not supported: unix datagram sockets (except VDE), file descriptors (fd=). -net nic, -nic and
-device are guest options: they belong on the QEMU command line.

Subcommand:
  usernet slirp4netns [OPTION]... PID|PATH TAPNAME
      a drop-in for slirp4netns 1.2 (rootlesskit, Podman): see usernet slirp4netns --help

Other options:
  --config FILE        read options from FILE: the same tokens as the command line,
                       separated by spaces or newlines; # starts a comment; "..." or
                       '...' quote values with spaces. Combines with the command line
                       in order.
    e.g. --config /etc/usernet.conf
  --state-dir DIR      where DHCP leases and runtime forwards are kept
    e.g. --state-dir /var/lib/usernet
  --api-socket PATH    slirp4netns's JSON API on a unix socket (mode 0600): add_hostfwd,
                       list_hostfwd, remove_hostfwd, one request per connection; forwards
                       added there persist in --state-dir; guest_addr defaults to the
                       first DHCP address
    e.g. --api-socket /run/user/1000/usernet.api
  --api PATH|off       the management API (HTTP/JSON, see usernet ctl) on a unix socket
                       (mode 0600); on by default at $XDG_RUNTIME_DIR/usernet/api.sock
                       (else $TMPDIR/usernet-UID/api.sock) when no -netdev/-net is given
    e.g. --api /run/user/1000/usernet/api.sock
  --api-listen HOST:PORT  the management API on TCP as well; needs --api-token-file
  --api-token-file FILE   the bearer token TCP clients must send (the file's first
                       line, at least 16 characters)
    e.g. --api-listen 127.0.0.1:8180 --api-token-file ~/.config/usernet/token
  --dashboard HOST:PORT   a live web page (hubs, ports, leases, flows, forwards,
                       capture, log) on TCP; its URL with a token is printed at start
                       (the --api-token-file token, else a random one); --api-listen
                       serves it too
    e.g. --dashboard 127.0.0.1:8188
  --log-level LEVEL    debug, info, warn or error (info)
    e.g. --log-level debug
  --log-format FORMAT  text (one readable line per record) or json (one object per
                       line), for every line, the API's included (text)
    e.g. --log-format json
  --sandbox            once started, confine the process: no new privileges, a
                       seccomp filter (no ptrace, mount, bpf, modules, namespaces,
                       ...: EPERM), and Landlock where the kernel has it (files: only
                       the system read-only and what the options name); one log line
                       says what was applied
  -h, --help           this text
  -V, --version        the version

Talking to a running usernet (see usernet ctl --help):
  usernet ctl [--api PATH | --api-url URL --token-file FILE] [--json] COMMAND
    e.g. usernet ctl status; usernet ctl capture 0 hub0.pcap --count 100

Under systemd: Type=notify (READY=1 once every listener is bound), SIGHUP re-reads
--config files (netdevs and hostfwd= change live; the rest is logged), socket
activation for listeners (FileDescriptorName= the netdev id, api, dashboard); see
examples/systemd/.

Exit status: 0 after a clean stop (SIGINT/SIGTERM), 1 when start-up fails, 2 on a
bad command line.
`;
