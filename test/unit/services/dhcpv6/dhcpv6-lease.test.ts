import { describe, expect, it } from "vitest";
import { parseLeases6 } from "../../../../src/services/dhcpv6/dhcpv6-lease.js";

describe("stored DHCPv6 leases", () => {
  it("keeps well-formed leases in canonical form and skips the rest", () => {
    const good = {
      mac: "52:54:00:12:34:56",
      duid: "0003000152540012",
      iaid: 1,
      ip: "FEC0:0::15",
      state: "bound",
      expiresAt: 5,
    };
    const r = parseLeases6([
      good,
      { ...good, ip: "10.0.2.15" },
      { ...good, duid: "zz" },
      { ...good, iaid: -1 },
      { ...good, state: "bootp" },
      { ...good, expiresAt: "soon" },
      null,
    ]);
    expect(r).toEqual({ leases: [{ ...good, ip: "fec0::15" }], skipped: 6 });
    expect(parseLeases6({})).toEqual({ leases: [], skipped: 0 });
  });
});
