import { describe, expect, it } from "vitest";
import { NetdevList } from "../../../src/cli/netdev.js";
import { defaultUserIpv6, defaultUserNetdev } from "../../../src/cli/netdev-user.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { UserNetdevConfig } from "../../../src/config.js";

const user = (opts: string): UserNetdevConfig => {
  const c = new NetdevList().add("-netdev", `user,id=n0${opts}`);
  if (c.type !== "user") throw new Error(`not a user netdev: ${c.type}`);
  return c;
};
const error = (opts: string): string => {
  try {
    user(opts);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  return "no error";
};
const base: UserNetdevConfig = { ...defaultUserNetdev("n0", 0), ipv6: defaultUserIpv6() };
const noIpv6 = (): UserNetdevConfig => {
  const { ipv6: _, ...rest } = base;
  return rest;
};

describe("-netdev user: valid lines", () => {
  it.each<[string, Partial<UserNetdevConfig>]>([
    ["", {}],
    // QEMU places defaults at net | (0.0.2.x & ~mask)
    [
      ",net=192.168.76.0/24",
      {
        net: "192.168.76.0",
        host: "192.168.76.2",
        dns: "192.168.76.3",
        dhcpStart: "192.168.76.15",
        smbServer: "192.168.76.4",
      },
    ],
    [",net=10.0.2.0/255.255.255.0", {}],
    [",net=10.0.2.77/24", {}],
    [
      ",net=172.20.0.0/16",
      {
        net: "172.20.0.0",
        prefixLength: 16,
        host: "172.20.2.2",
        dns: "172.20.2.3",
        dhcpStart: "172.20.2.15",
        smbServer: "172.20.2.4",
      },
    ],
    [
      ",net=10.0.2.128/25",
      {
        net: "10.0.2.128",
        prefixLength: 25,
        host: "10.0.2.130",
        dns: "10.0.2.131",
        dhcpStart: "10.0.2.143",
        smbServer: "10.0.2.132",
      },
    ],
    // no prefix: QEMU's classful guess
    [",net=10.0.2.5", { net: "10.0.0.0", prefixLength: 8 }],
    [
      ",net=192.168.5.0",
      {
        net: "192.168.0.0",
        prefixLength: 16,
        host: "192.168.2.2",
        dns: "192.168.2.3",
        dhcpStart: "192.168.2.15",
        smbServer: "192.168.2.4",
      },
    ],
    [
      ",net=172.16.9.0",
      {
        net: "172.16.0.0",
        prefixLength: 12,
        host: "172.16.2.2",
        dns: "172.16.2.3",
        dhcpStart: "172.16.2.15",
        smbServer: "172.16.2.4",
      },
    ],
    [
      ",net=10.0.2.0/24,host=10.0.2.1,dns=10.0.2.53,dhcpstart=10.0.2.100,dhcpcount=100",
      { host: "10.0.2.1", dns: "10.0.2.53", dhcpStart: "10.0.2.100", dhcpCount: 100 },
    ],
    [",dhcpstart=10.0.2.239", { dhcpStart: "10.0.2.239" }],
    [
      ",dnssearch=example.com,dnssearch=lan,domainname=example.com,hostname=guest1",
      { dnsSearch: ["example.com", "lan"], domainName: "example.com", hostname: "guest1" },
    ],
    [",restrict=on", { restrict: true }],
    [",restrict=yes", { restrict: true }],
    [",restrict", { restrict: true }],
    [",norestrict", { restrict: false }],
    [
      ",tftp=/srv/tftp,bootfile=pxelinux.0,tftp-server-name=10.0.2.2",
      { tftp: "/srv/tftp", bootfile: "pxelinux.0", tftpServerName: "10.0.2.2" },
    ],
    [",tftp=/srv/a,,b", { tftp: "/srv/a,b" }],
    [",smb=/srv/share,smbserver=10.0.2.9", { smb: "/srv/share", smbServer: "10.0.2.9" }],
    [",ipv6=on,ipv4=on", {}],
    [
      ",ipv6-net=fd00::/64",
      { ipv6: { prefix: "fd00::", prefixLength: 64, host: "fd00::2", dns: "fd00::3" } },
    ],
    [
      ",ipv6-net=fd00:1:2:3::9",
      { ipv6: { prefix: "fd00:1:2:3::", prefixLength: 64, host: "fd00:1:2:3::2", dns: "fd00:1:2:3::3" } },
    ],
    [
      ",ipv6-prefix=2001:db8:0:0:ff::,ipv6-prefixlen=80,ipv6-host=2001:db8:0:0:ff::1,ipv6-dns=2001:db8:0:0:ff::53",
      {
        ipv6: {
          prefix: "2001:db8:0:0:ff::",
          prefixLength: 80,
          host: "2001:db8::ff:0:0:1",
          dns: "2001:db8::ff:0:0:53",
        },
      },
    ],
    // QEMU's quirk: ipv6=on alone turns IPv4 off
    [",ipv6=on", { ipv4: false }],
    [
      ",dns-upstream=127.0.0.1:5353,dns-upstream=192.0.2.53",
      {
        dnsUpstream: [
          { host: "127.0.0.1", port: 5353 },
          { host: "192.0.2.53", port: 53 },
        ],
      },
    ],
    [
      ",dns-upstream=[::1]:5353,dns-upstream=2001:db8::53,dns-upstream=[0:0::2]",
      {
        dnsUpstream: [
          { host: "::1", port: 5353 },
          { host: "2001:db8::53", port: 53 },
          { host: "::2", port: 53 },
        ],
      },
    ],
    [",nat64=on", { nat64Prefix: "64:ff9b::" }],
    [",nat64=on,nat64-prefix=2001:db8:64::/96", { nat64Prefix: "2001:db8:64::" }],
    [",nat64=on,nat64-prefix=2001:db8:64::", { nat64Prefix: "2001:db8:64::" }],
    [",nat64=off", {}],
    [",dhcpv6=stateless", { dhcpv6: "stateless" }],
    [",dhcpv6=off", { dhcpv6: "off" }],
    [
      ",host-loopback=off,outbound-addr=192.0.2.10,mtu=65520",
      { hostLoopback: false, outboundAddr: "192.0.2.10", mtu: 65520 },
    ],
    [",mtu=68", { mtu: 68 }],
    [",max-flows=100000,max-flows-per-guest=40000", { maxFlows: 100000, maxFlowsPerGuest: 40000 }],
    [",max-flows-per-guest=1", { maxFlowsPerGuest: 1 }],
    [",max-flows=1048576", { maxFlows: 1048576 }],
    [
      ",udp-max-sockets=2000,udp-max-sockets-per-guest=100,icmp-max-ids=50,icmp-max-ids-per-guest=5",
      { udpMaxSockets: 2000, udpMaxSocketsPerGuest: 100, icmpMaxIds: 50, icmpMaxIdsPerGuest: 5 },
    ],
    [
      ",dns-max-queries=512,dns-max-queries-per-guest=32,tftp-max-sessions=16,tftp-max-sessions-per-guest=2",
      { dnsMaxQueries: 512, dnsMaxQueriesPerGuest: 32, tftpMaxSessions: 16, tftpMaxSessionsPerGuest: 2 },
    ],
    [",udp-max-sockets-per-guest=65536", { udpMaxSocketsPerGuest: 65536 }],
    [
      ",reasm-max-datagrams=128,reasm-max-datagrams-per-guest=8,max-guests-per-port=4",
      { reasmMaxDatagrams: 128, reasmMaxDatagramsPerGuest: 8, maxGuestsPerPort: 4 },
    ],
    [
      ",buffer-max-bytes=1073741824,buffer-max-bytes-per-guest=1048576",
      { bufferMaxBytes: 1073741824, bufferMaxBytesPerGuest: 1048576 },
    ],
    [
      ",hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53,hostfwd=tcp::0-:80",
      {
        hostfwd: [
          { proto: "tcp", hostAddr: "", hostPort: 2222, guestAddr: "", guestPort: 22 },
          { proto: "udp", hostAddr: "127.0.0.1", hostPort: 5353, guestAddr: "10.0.2.15", guestPort: 53 },
          { proto: "tcp", hostAddr: "", hostPort: 0, guestAddr: "", guestPort: 80 },
        ],
      },
    ],
    [
      ",guestfwd=tcp:10.0.2.100:1234-cmd:nc 127.0.0.1 22,guestfwd=tcp::80-tcp:127.0.0.1:8080",
      {
        guestfwd: [
          {
            proto: "tcp",
            server: "10.0.2.100",
            port: 1234,
            target: { kind: "cmd", command: "nc 127.0.0.1 22" },
          },
          // an empty server is net+4, as libslirp fills it in
          {
            proto: "tcp",
            server: "10.0.2.4",
            port: 80,
            target: { kind: "tcp", host: "127.0.0.1", port: 8080 },
          },
        ],
      },
    ],
    [
      ",guestfwd=tcp:10.0.2.100:1-cmd:printf a,,b",
      {
        guestfwd: [
          { proto: "tcp", server: "10.0.2.100", port: 1, target: { kind: "cmd", command: "printf a,b" } },
        ],
      },
    ],
  ])("user,id=n0%s", (opts, changes) => {
    expect(user(opts)).toEqual({ ...base, ...changes });
  });

  it.each([",ipv4=on", ",ipv6=off", ",ipv4=on,ipv6=off"])(
    "user,id=n0%s: IPv4 only (QEMU's quirk for ipv4=on alone)",
    (opts) => {
      expect(user(opts)).toEqual(noIpv6());
    },
  );

  it("leaves optional fields out when not given", () => {
    const c = user("");
    for (const k of [
      "domainName",
      "hostname",
      "tftp",
      "tftpServerName",
      "bootfile",
      "smb",
      "outboundAddr",
      "maxFlows",
      "maxFlowsPerGuest",
    ]) {
      expect(Object.hasOwn(c, k)).toBe(false);
    }
  });
});

describe("-netdev user: errors", () => {
  const accepted =
    "id, hubid, net, host, dhcpstart, dhcpcount, dns, dnssearch, domainname, hostname, restrict, tftp, " +
    "tftp-server-name, bootfile, smb, smbserver, hostfwd, hostfwd-source, guestfwd, ipv4, ipv6, ipv6-net, ipv6-prefix, ipv6-prefixlen, ipv6-host, ipv6-dns, dns-upstream, nat64, nat64-prefix, dhcpv6, host-loopback, " +
    "outbound-addr, mtu, max-flows, max-flows-per-guest, udp-max-sockets, udp-max-sockets-per-guest, " +
    "icmp-max-ids, icmp-max-ids-per-guest, dns-max-queries, dns-max-queries-per-guest, tftp-max-sessions, " +
    "tftp-max-sessions-per-guest, reasm-max-datagrams, reasm-max-datagrams-per-guest, buffer-max-bytes, buffer-max-bytes-per-guest, max-guests-per-port";
  it.each([
    [",net=10.0.2.0/33", "-netdev user: net=10.0.2.0/33: expected ADDR[/PREFIX] such as net=10.0.2.0/24"],
    [",net=10.0.2", "-netdev user: net=10.0.2: expected ADDR[/PREFIX] such as net=10.0.2.0/24"],
    [",net=10.0.2.0/", "-netdev user: net=10.0.2.0/: expected ADDR[/PREFIX] such as net=10.0.2.0/24"],
    [
      ",net=10.0.2.0/31",
      "-netdev user: net=10.0.2.0/31: prefix must be 4..30 (room for gateway, DNS and guests)",
    ],
    [
      ",net=10.0.0.0/3",
      "-netdev user: net=10.0.0.0/3: prefix must be 4..30 (room for gateway, DNS and guests)",
    ],
    [
      ",net=10.0.2.0/255.0.255.0",
      "-netdev user: net=10.0.2.0/255.0.255.0: netmask must be contiguous, such as 255.255.255.0",
    ],
    [",foo=1", `-netdev user: unknown option "foo" (accepted: ${accepted})`],
    [",net", "-netdev user: net: needs a value: expected ADDR[/PREFIX] such as net=10.0.2.0/24"],
    [
      ",net=10.0.2.0/24,net=10.0.3.0/24",
      "-netdev user: net= given twice (only dnssearch, hostfwd, guestfwd, dns-upstream may repeat)",
    ],
    [",host=10.0.3.2", "-netdev user: host=10.0.3.2: not inside net=10.0.2.0/24"],
    [",host=10.0.2.0", "-netdev user: host=10.0.2.0: is the network address of 10.0.2.0/24"],
    [",host=10.0.2.255", "-netdev user: host=10.0.2.255: is the broadcast address of 10.0.2.0/24"],
    [",host=10.0.2.x", "-netdev user: host=10.0.2.x: expected an IPv4 address such as host=10.0.2.2"],
    [",host=localhost", "-netdev user: host=localhost: expected an IPv4 address such as host=10.0.2.2"],
    [
      ",net=10.0.2.0/28",
      "-netdev user: dhcpstart=10.0.2.15 (default): is the broadcast address of 10.0.2.0/28",
    ],
    [",dns=10.0.3.3", "-netdev user: dns=10.0.3.3: not inside net=10.0.2.0/24"],
    [",dns=10.0.2.2", "-netdev user: dns=10.0.2.2: must differ from host=10.0.2.2 (default)"],
    [",host=10.0.2.3", "-netdev user: dns=10.0.2.3 (default): must differ from host=10.0.2.3"],
    [",smbserver=10.0.2.3", "-netdev user: smbserver=10.0.2.3: must differ from dns=10.0.2.3 (default)"],
    [",smbserver=10.0.2.2", "-netdev user: smbserver=10.0.2.2: must differ from host=10.0.2.2 (default)"],
    [",smbserver=10.0.4.4", "-netdev user: smbserver=10.0.4.4: not inside net=10.0.2.0/24"],
    [",dhcpstart=10.0.1.15", "-netdev user: dhcpstart=10.0.1.15: not inside net=10.0.2.0/24"],
    [
      ",dhcpstart=10.0.2.250",
      "-netdev user: dhcpstart=10.0.2.250: a pool of 16 runs past 10.0.2.254, the last address of 10.0.2.0/24",
    ],
    [
      ",dhcpcount=241",
      "-netdev user: dhcpstart=10.0.2.15 (default): a pool of 241 runs past 10.0.2.254, the last address of 10.0.2.0/24",
    ],
    [
      ",dhcpstart=10.0.2.1",
      "-netdev user: dhcpstart=10.0.2.1: the DHCP pool 10.0.2.1-10.0.2.16 holds host=10.0.2.2 (default)",
    ],
    [",host=10.0.2.20", "-netdev user: host=10.0.2.20: inside the DHCP pool 10.0.2.15-10.0.2.30"],
    [",dns=10.0.2.30", "-netdev user: dns=10.0.2.30: inside the DHCP pool 10.0.2.15-10.0.2.30"],
    [
      ",smb=/srv,smbserver=10.0.2.16",
      "-netdev user: smbserver=10.0.2.16: inside the DHCP pool 10.0.2.15-10.0.2.30",
    ],
    [",dhcpcount=0", "-netdev user: dhcpcount=0: expected a pool size such as dhcpcount=16"],
    [",dhcpcount=x", "-netdev user: dhcpcount=x: expected a pool size such as dhcpcount=16"],
    [",restrict=1", "-netdev user: restrict=1: expected on or off such as restrict=on"],
    [",restrict=ON", "-netdev user: restrict=ON: expected on or off such as restrict=on"],
    [",ipv4=off,ipv6=off", "-netdev user: ipv4=off and ipv6=off: at least one of IPv4 and IPv6 must be on"],
    [",ipv6-net=fd00::/127", "-netdev user: ipv6-net=fd00::/127: prefix length must be 1..126"],
    [",ipv6-net=fd00::/0", "-netdev user: ipv6-net=fd00::/0: prefix length must be 1..126"],
    [
      ",ipv6-net=fd00::x/64",
      "-netdev user: ipv6-net=fd00::x/64: expected PREFIX[/LEN] such as ipv6-net=fec0::/64",
    ],
    [",ipv6-net=ff02::/64", "-netdev user: ipv6-net=ff02::/64: not a unicast prefix"],
    [
      ",ipv6-net=fd00::/64,ipv6-prefix=fd00::",
      "-netdev user: ipv6-net=fd00::/64: give ipv6-net= or ipv6-prefix=/ipv6-prefixlen=, not both",
    ],
    [",ipv6-host=fec1::2", "-netdev user: ipv6-host=fec1::2: must lie in fec0::/64"],
    [",ipv6-dns=fec0::", "-netdev user: ipv6-dns=fec0::: must not be the prefix itself (fec0::/64)"],
    [",ipv6-dns=fec0::2", "-netdev user: ipv6-dns=fec0::2: must differ from ipv6-host=fec0::2"],
    [
      ",ipv6-host=10.0.2.2",
      "-netdev user: ipv6-host=10.0.2.2: expected an IPv6 address in the prefix such as ipv6-host=fec0::2",
    ],
    [",mtu=67", "-netdev user: mtu=67: expected 68..65520 such as mtu=65520"],
    [",mtu=65521", "-netdev user: mtu=65521: expected 68..65520 such as mtu=65520"],
    [",max-flows=0", "-netdev user: max-flows=0: expected 1..1048576 such as max-flows=65536"],
    [",max-flows=1048577", "-netdev user: max-flows=1048577: expected 1..1048576 such as max-flows=65536"],
    [
      ",max-flows-per-guest=lots",
      "-netdev user: max-flows-per-guest=lots: expected 1..1048576 such as max-flows-per-guest=32768",
    ],
    [
      ",max-flows=100,max-flows-per-guest=101",
      "-netdev user: max-flows-per-guest=101: must be at most max-flows=100",
    ],
    [",udp-max-sockets=0", "-netdev user: udp-max-sockets=0: expected 1..65536 such as udp-max-sockets=4096"],
    [
      ",udp-max-sockets-per-guest=65537",
      "-netdev user: udp-max-sockets-per-guest=65537: expected 1..65536 such as udp-max-sockets-per-guest=1024",
    ],
    [",icmp-max-ids=x", "-netdev user: icmp-max-ids=x: expected 1..65536 such as icmp-max-ids=1024"],
    [
      ",icmp-max-ids=10,icmp-max-ids-per-guest=11",
      "-netdev user: icmp-max-ids-per-guest=11: must be at most icmp-max-ids=10",
    ],
    [
      ",dns-max-queries-per-guest=-1",
      "-netdev user: dns-max-queries-per-guest=-1: expected 1..65536 such as dns-max-queries-per-guest=64",
    ],
    [
      ",tftp-max-sessions=16385",
      "-netdev user: tftp-max-sessions=16385: expected 1..16384 such as tftp-max-sessions=64",
    ],
    [
      ",tftp-max-sessions=4,tftp-max-sessions-per-guest=5",
      "-netdev user: tftp-max-sessions-per-guest=5: must be at most tftp-max-sessions=4",
    ],
    [
      ",dnssearch=b..com",
      "-netdev user: dnssearch=b..com: expected a domain name such as dnssearch=example.com",
    ],
    [
      ",domainname=a b",
      "-netdev user: domainname=a b: expected a domain name such as domainname=example.com",
    ],
    [",hostname=", "-netdev user: hostname=: expected 1 to 255 printable characters such as hostname=guest"],
    [
      ",hostname=a b",
      "-netdev user: hostname=a b: expected 1 to 255 printable characters such as hostname=guest",
    ],
    [
      `,bootfile=${"b".repeat(128)}`,
      `-netdev user: bootfile=${"b".repeat(128)}: expected a file name of at most 127 bytes such as bootfile=pxelinux.0`,
    ],
    [",tftp=", "-netdev user: tftp=: expected a directory such as tftp=/srv/tftp"],
    [
      ",dns-upstream=127.0.0.1:0",
      "-netdev user: dns-upstream=127.0.0.1:0: expected IP[:PORT] such as dns-upstream=127.0.0.1:5353",
    ],
    [
      ",dns-upstream=[::1]:0",
      "-netdev user: dns-upstream=[::1]:0: expected IP[:PORT] such as dns-upstream=127.0.0.1:5353",
    ],
    [
      ",nat64=on,nat64-prefix=2001:db8::/64",
      "-netdev user: nat64-prefix=2001:db8::/64: only /96 prefixes are supported",
    ],
    [
      ",nat64=on,nat64-prefix=64:ff9b::1",
      "-netdev user: nat64-prefix=64:ff9b::1: the last 32 bits must be zero",
    ],
    [",nat64-prefix=64:ff9b::", "-netdev user: nat64-prefix=64:ff9b::: needs nat64=on"],
    [",dhcpv6=yes", "-netdev user: dhcpv6=yes: expected stateful, stateless or off such as dhcpv6=stateless"],
    [
      ",dns-upstream=localhost",
      "-netdev user: dns-upstream=localhost: expected IP[:PORT] such as dns-upstream=127.0.0.1:5353",
    ],
    [
      ",outbound-addr=x",
      "-netdev user: outbound-addr=x: expected an IPv4 address such as outbound-addr=192.0.2.10",
    ],
    [
      ",hostfwd=tcp:2222-:22",
      '-netdev user: hostfwd=tcp:2222-:22: bad host address "2222-"; expected [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport such as hostfwd=tcp::2222-:22',
    ],
    [
      ",hostfwd=tcp::2222-10.0.3.5:22",
      "-netdev user: hostfwd=tcp::2222-10.0.3.5:22: guest address 10.0.3.5 not inside net=10.0.2.0/24",
    ],
    [
      ",hostfwd=tcp::2222-10.0.2.255:22",
      "-netdev user: hostfwd=tcp::2222-10.0.2.255:22: guest address 10.0.2.255 is the broadcast address of 10.0.2.0/24",
    ],
    [
      ",hostfwd=tcp::2222-10.0.2.2:22",
      "-netdev user: hostfwd=tcp::2222-10.0.2.2:22: guest address 10.0.2.2 is the host address",
    ],
    [
      ",hostfwd=tcp::2222-10.0.2.3:22",
      "-netdev user: hostfwd=tcp::2222-10.0.2.3:22: guest address 10.0.2.3 is the DNS address",
    ],
    [
      ",guestfwd=tcp:10.0.2.100:0-cmd:cat",
      '-netdev user: guestfwd=tcp:10.0.2.100:0-cmd:cat: bad port "0" (1..65535); expected [tcp]:[server]:port-cmd:COMMAND or [tcp]:[server]:port-tcp:HOST:PORT such as guestfwd=tcp:10.0.2.100:1234-tcp:127.0.0.1:80',
    ],
    [
      ",guestfwd=tcp:10.0.2.2:1234-cmd:cat",
      "-netdev user: guestfwd=tcp:10.0.2.2:1234-cmd:cat: server 10.0.2.2 is the host address",
    ],
    [
      ",guestfwd=tcp:10.0.2.3:1234-cmd:cat",
      "-netdev user: guestfwd=tcp:10.0.2.3:1234-cmd:cat: server 10.0.2.3 is the DNS address",
    ],
    [
      ",guestfwd=tcp:10.0.3.1:1234-cmd:cat",
      "-netdev user: guestfwd=tcp:10.0.3.1:1234-cmd:cat: server 10.0.3.1 not inside net=10.0.2.0/24",
    ],
    [
      ",guestfwd=tcp:10.0.2.20:1234-cmd:cat",
      "-netdev user: guestfwd=tcp:10.0.2.20:1234-cmd:cat: server 10.0.2.20 is inside the DHCP pool",
    ],
    [
      ",smb=/srv,guestfwd=tcp::139-cmd:cat",
      "-netdev user: guestfwd=tcp::139-cmd:cat: 10.0.2.4:139 is taken by smb=",
    ],
    [
      ",guestfwd=tcp:10.0.2.100:1-cmd:a,guestfwd=tcp:10.0.2.100:1-cmd:b",
      "-netdev user: guestfwd=tcp:10.0.2.100:1-cmd:b: 10.0.2.100:1 is forwarded twice",
    ],
  ])("user,id=n0%s", (opts, message) => {
    expect(error(opts)).toBe(message);
  });
});
