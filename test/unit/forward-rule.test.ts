/**
 * The one forward-rule check, against an independent statement of the rules, and the
 * entry points that use it (hostfwd= text, the state file, the forwards facade,
 * slirp4netns's API) agreeing with it on any input.
 */
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { handleSlirp4netnsRequest } from "../../src/api/slirp4netns-api.js";
import { formatHostForward, parseHostForward } from "../../src/cli/forwards.js";
import { defaultUserNetdev } from "../../src/cli/netdev-user.js";
import type { HostForward } from "../../src/config.js";
import { checkHostForward, forwardFieldProblem, guestAddressProblem } from "../../src/forward-rule.js";
import { checkRule } from "../../src/forwards.js";
import { parseStoredRule } from "../../src/proxy/forward-store.js";
import { broadcastOf, inSubnet, ipv4ToString, networkOf, parseIpv4 } from "../../src/stack/wire/addr.js";
import type { UserNetdev } from "../../src/user-netdev.js";
import type { ForwardsFacade, ForwardView } from "../../src/usernet.js";

const quad = fc.nat({ max: 0xffffffff }).map(ipv4ToString);
const anyAddr = fc.oneof(
  quad,
  fc.constantFrom("", "0.0.0.0", "10.2", "010.0.0.1", "1.2.3.256", "host", " 1.2.3.4"),
  fc.constantFrom(undefined, 7, null),
);
const anyPort = fc.oneof(
  fc.integer({ min: -3, max: 70_000 }),
  fc.constantFrom(1.5, Number.NaN, "22", undefined, null),
);
const anyProto = fc.constantFrom("tcp", "udp", "icmp", "TCP", "", undefined, 6);
const anyRule = fc.record(
  {
    proto: anyProto,
    hostAddr: anyAddr,
    hostPort: anyPort,
    guestAddr: anyAddr,
    guestPort: anyPort,
    preserveSource: fc.constantFrom(true, false, "yes", 1),
  },
  { requiredKeys: ["proto", "hostAddr", "hostPort", "guestAddr", "guestPort"] },
);

/** the rules, as README and QEMU state them, written again without the code under test */
function wellFormed(r: Record<string, unknown>): boolean {
  const addr = (v: unknown) => v === "" || (typeof v === "string" && parseIpv4(v) !== undefined);
  const port = (v: unknown, min: number) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= 65535;
  return (
    (r.proto === "tcp" || r.proto === "udp") &&
    addr(r.hostAddr) &&
    port(r.hostPort, 0) &&
    addr(r.guestAddr) &&
    port(r.guestPort, 1) &&
    (r.preserveSource === undefined || typeof r.preserveSource === "boolean")
  );
}

const network = defaultUserNetdev("u0", 0);

describe("checkHostForward", () => {
  test.prop([anyRule])("accepts exactly the well-formed rules, and copies only their fields", (r) => {
    const checked = checkHostForward({ ...r, extra: 1 });
    expect(checked.ok).toBe(wellFormed(r));
    if (checked.ok) expect(checked.value).toEqual(r);
    else expect(forwardFieldProblem(checked.field, r[checked.field])).toBe(checked.reason);
  });

  it("names the leftmost wrong field", () => {
    const r = checkHostForward({ proto: "tcp", hostAddr: "x", hostPort: 1, guestAddr: "", guestPort: 0 });
    expect(r).toEqual({ ok: false, field: "hostAddr", reason: 'bad host address "x"' });
    expect(checkHostForward(null)).toMatchObject({ ok: false, field: "proto" });
  });
});

describe("every entry point agrees with it", () => {
  test.prop([anyRule])("the state file", (r) => {
    expect(parseStoredRule(r) !== undefined).toBe(wellFormed(r));
  });

  test.prop([anyRule])("the forwards facade (plus the network check)", (r) => {
    const nd = { config: network } as UserNetdev;
    const ok = wellFormed(r) && guestAddressProblem(network, r.guestAddr as string) === undefined;
    expect(checkRule(nd, r).ok).toBe(ok);
  });

  test.prop([anyRule.filter((r) => r.preserveSource === undefined && r.proto !== "")])(
    "hostfwd= text, for values the grammar can write",
    (r) => {
      const text = formatHostForward(r as unknown as HostForward);
      // the text cannot tell 22 from "22": a string port reads as a number
      const asText = { ...r, hostPort: textPort(r.hostPort), guestPort: textPort(r.guestPort) };
      const parsed = parseHostForward(text);
      if (/[:-]/.test(`${r.hostAddr}${r.guestAddr}`)) return; // would change the cuts
      expect(parsed.ok).toBe(wellFormed(asText));
      if (parsed.ok) expect(parsed.value).toEqual(asText);
    },
  );

  test.prop([anyRule])("slirp4netns's add_hostfwd", async (r) => {
    const added: HostForward[] = [];
    const facade: ForwardsFacade = {
      list: () => [],
      add: async (_n, rule) => {
        added.push(rule);
        return { id: 1 } as ForwardView;
      },
      remove: async () => false,
    };
    const args = {
      proto: r.proto,
      host_addr: r.hostAddr,
      host_port: r.hostPort,
      guest_addr: r.guestAddr,
      guest_port: r.guestPort,
    };
    const reply = await handleSlirp4netnsRequest(
      JSON.stringify({ execute: "add_hostfwd", arguments: args }),
      facade,
    );
    // JSON has no undefined or NaN; "" and a missing host_addr mean every address; port 0 is refused
    const sent = JSON.parse(JSON.stringify(args)) as Record<string, unknown>;
    const ok =
      wellFormed({
        proto: sent.proto,
        hostAddr: sent.host_addr === undefined ? "" : sent.host_addr,
        hostPort: sent.host_port,
        guestAddr: sent.guest_addr === undefined ? "" : sent.guest_addr,
        guestPort: sent.guest_port,
      }) && sent.host_port !== 0;
    expect(reply.startsWith('{"return"')).toBe(ok);
    expect(added.length).toBe(ok ? 1 : 0);
  });
});

function textPort(v: unknown): unknown {
  const s = String(v);
  return /^(0|[1-9][0-9]{0,4})$/.test(s) ? Number(s) : s;
}

describe("guestAddressProblem", () => {
  test.prop([fc.nat({ max: 0xffffffff }), fc.integer({ min: 4, max: 30 }), fc.nat({ max: 0xffffffff })])(
    "a guest is a host address of the network other than the gateway and DNS",
    (netAny, prefix, a) => {
      const net = networkOf(netAny, prefix);
      const n = {
        net: ipv4ToString(net),
        prefixLength: prefix,
        host: ipv4ToString(net + 2),
        dns: ipv4ToString(net + 3),
      };
      const ok =
        inSubnet(a, net, prefix) &&
        a !== net &&
        a !== broadcastOf(net, prefix) &&
        a !== net + 2 &&
        a !== net + 3;
      expect(guestAddressProblem(n, ipv4ToString(a)) === undefined).toBe(ok);
    },
  );

  it("takes the empty address (the first DHCP address) and names the problem", () => {
    expect(guestAddressProblem(network, "")).toBeUndefined();
    expect(guestAddressProblem(network, "10.0.3.5")).toBe(
      "guest address 10.0.3.5 not inside net=10.0.2.0/24",
    );
    expect(guestAddressProblem(network, "10.0.2.255")).toBe(
      "guest address 10.0.2.255 is the broadcast address of 10.0.2.0/24",
    );
    expect(guestAddressProblem(network, "10.0.2.3")).toBe("guest address 10.0.2.3 is the DNS address");
  });
});

describe("guestAddressProblem on IPv6", () => {
  const net = {
    net: "10.0.2.0",
    prefixLength: 24,
    host: "10.0.2.2",
    dns: "10.0.2.3",
    ipv6: { prefix: "fec0::", prefixLength: 64, host: "fec0::2", dns: "fec0::3" },
  };
  it.each([
    ["fec0::15", undefined],
    ["fec0::2", "guest address fec0::2 is the IPv6 host address"],
    ["fec0::3", "guest address fec0::3 is the IPv6 DNS address"],
    ["fec0::", "guest address fec0:: is the prefix address of fec0::/64"],
    ["fec1::15", "guest address fec1::15 not inside ipv6-net=fec0::/64"],
  ])("%s → %s", (a, problem) => {
    expect(guestAddressProblem(net, a)).toBe(problem);
  });
  it("refuses an IPv6 guest on a netdev without IPv6", () => {
    expect(guestAddressProblem({ ...net, ipv6: undefined }, "fec0::15")).toBe(
      "guest address fec0::15 is IPv6, but this netdev has ipv6=off",
    );
  });
});
