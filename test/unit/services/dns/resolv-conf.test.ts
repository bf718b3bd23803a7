import { describe, expect, it } from "vitest";
import { chooseUpstreams, parseResolvConf } from "../../../../src/services/dns/resolv-conf.js";

// Texts written here; the machine's own /etc/resolv.conf is never read.
describe("parseResolvConf", () => {
  it("reads IPv4 nameservers in order, on port 53", () => {
    const r = parseResolvConf(
      "# generated\nsearch example.test\nnameserver 192.0.2.1\n\nnameserver\t192.0.2.2\n",
    );
    expect(r.nameservers).toEqual([
      { host: "192.0.2.1", port: 53 },
      { host: "192.0.2.2", port: 53 },
    ]);
    expect(r.notes).toEqual([]);
  });

  it("keeps systemd-resolved's stub", () => {
    expect(parseResolvConf("nameserver 127.0.0.53\noptions edns0 trust-ad\n").nameservers).toEqual([
      { host: "127.0.0.53", port: 53 },
    ]);
  });

  it("skips zoned IPv6, junk, comments and more than three, with notes", () => {
    const r = parseResolvConf(
      [
        "nameserver fe80::1%eth0",
        "; nameserver 192.0.2.9",
        "#nameserver 192.0.2.8",
        "nameserver 192.0.2.1 # primary",
        "nameserver not-an-address",
        "nameserver",
        "nameserver 192.0.2.2",
        "nameserver 192.0.2.3",
        "nameserver 192.0.2.4",
        "  nameserver 192.0.2.5  ",
        "nameservers 192.0.2.6",
      ].join("\r\n"),
    );
    expect(r.nameservers.map((s) => s.host)).toEqual(["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    expect(r.notes).toHaveLength(5);
    expect(r.notes[0]).toMatch(/line 1: nameserver fe80::1%eth0 with a zone skipped/);
    expect(r.notes[1]).toMatch(/line 5: "not-an-address" is not an IP address/);
    expect(r.notes[2]).toMatch(/line 6: nameserver without an address/);
    expect(r.notes[3]).toMatch(/line 9: nameserver 192.0.2.4 ignored/);
    expect(r.notes[4]).toMatch(/line 10: nameserver 192.0.2.5 ignored/);
  });

  it("takes IPv6 nameservers like IPv4 ones", () => {
    expect(parseResolvConf("nameserver 2001:db8::1\nnameserver 192.0.2.1\n").nameservers).toEqual([
      { host: "2001:db8::1", port: 53 },
      { host: "192.0.2.1", port: 53 },
    ]);
  });

  it("returns nothing for an empty file", () => {
    expect(parseResolvConf("")).toEqual({ nameservers: [], notes: [] });
  });
});

describe("chooseUpstreams", () => {
  const text = "nameserver 192.0.2.1\n";

  it("prefers dns-upstream= when given", () => {
    const configured = [{ host: "127.0.0.1", port: 5353 }];
    expect(chooseUpstreams(configured, text)).toEqual({
      servers: configured,
      source: "dns-upstream",
      notes: [],
    });
    expect(chooseUpstreams(configured, undefined).servers).toEqual(configured);
  });

  it("falls back to resolv.conf", () => {
    expect(chooseUpstreams([], text)).toEqual({
      servers: [{ host: "192.0.2.1", port: 53 }],
      source: "resolv.conf",
      notes: [],
    });
  });

  it("says why there are no servers", () => {
    expect(chooseUpstreams([], undefined)).toMatchObject({ servers: [], source: "none" });
    const r = chooseUpstreams([], "nameserver fe80::1%lo\n");
    expect(r.servers).toEqual([]);
    expect(r.source).toBe("none");
    expect(r.notes.join("\n")).toMatch(/zone skipped\n.*no usable nameserver/);
  });
});
