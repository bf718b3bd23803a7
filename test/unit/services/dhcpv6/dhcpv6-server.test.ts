import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../../src/log.js";
import {
  type Dhcpv6Message,
  type Dhcpv6Opt,
  Dhcpv6Status,
  decodeDhcpv6,
  decodeIaAddr,
  decodeIaNa,
  decodeNameList,
  decodeStatus,
  duidLl,
  encodeDhcpv6,
  encodeIaAddr,
  encodeIaNa,
  findOption,
  Dhcpv6Option as O,
  Dhcpv6Type as T,
} from "../../../../src/services/dhcpv6/dhcpv6-codec.js";
import { type Lease6Store, MemoryLease6Store } from "../../../../src/services/dhcpv6/dhcpv6-lease.js";
import { FileLease6Store } from "../../../../src/services/dhcpv6/dhcpv6-lease-file.js";
import { Dhcpv6Server, type Dhcpv6ServerConfig } from "../../../../src/services/dhcpv6/dhcpv6-server.js";
import { ipv6ToString, parseIpv6 } from "../../../../src/stack/wire/ipv6-addr.js";

const v6 = (s: string): Buffer => parseIpv6(s) as Buffer;
const MAC_A = Buffer.from("525400123456", "hex");
const MAC_B = Buffer.from("525400123457", "hex");
const DUID_A = Buffer.from("000100012c9e2a6e525400123456", "hex");
const DUID_B = Buffer.from("000100012c9e2a6e525400123457", "hex");
const SERVER = duidLl(Buffer.from("525600000002", "hex"));
const DAY = 86_400_000;

const base: Dhcpv6ServerConfig = {
  serverDuid: SERVER,
  prefix: v6("fec0::"),
  prefixLength: 64,
  stateful: true,
  poolStart: v6("fec0::15"),
  poolSize: 4,
  reserved: [v6("fec0::2"), v6("fec0::3")],
  dns: [v6("fec0::3")],
  dnsSearch: ["example.org"],
};

function server(
  over: Partial<Dhcpv6ServerConfig> = {},
  store: Lease6Store = new MemoryLease6Store(),
  usedBy?: (a: Buffer) => string | undefined,
) {
  return new Dhcpv6Server({ ...base, ...over }, store, silentLogger, usedBy);
}

function ia(iaid: number, ...addrs: string[]): Dhcpv6Opt {
  return {
    code: O.IA_NA,
    data: encodeIaNa({
      iaid,
      t1: 0,
      t2: 0,
      options: addrs.map((a) => ({
        code: O.IAADDR,
        data: encodeIaAddr({ address: v6(a), preferred: 0, valid: 0, options: [] }),
      })),
    }),
  };
}

function msg(type: number, options: Dhcpv6Opt[], duid: Buffer | null = DUID_A, serverId?: Buffer): Buffer {
  const opts: Dhcpv6Opt[] = [];
  if (duid) opts.push({ code: O.CLIENT_ID, data: duid });
  if (serverId) opts.push({ code: O.SERVER_ID, data: serverId });
  return encodeDhcpv6({ type, transactionId: 0x123456, options: [...opts, ...options] });
}

function decode(b: Buffer | undefined): Dhcpv6Message {
  if (!b) throw new Error("no reply");
  const r = decodeDhcpv6(b);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

/** The addresses (with valid lifetime) and status of every IA_NA in a reply. */
function ias(m: Dhcpv6Message): { iaid: number; addrs: [string, number][]; status?: number }[] {
  return m.options
    .filter((o) => o.code === O.IA_NA)
    .map((o) => {
      const r = decodeIaNa(o.data);
      if (!r.ok) throw new Error(r.reason);
      const addrs: [string, number][] = [];
      let status: number | undefined;
      for (const x of r.value.options) {
        if (x.code === O.IAADDR) {
          const a = decodeIaAddr(x.data);
          if (a.ok) addrs.push([ipv6ToString(a.value.address), a.value.valid]);
        }
        if (x.code === O.STATUS_CODE) {
          const s = decodeStatus(x.data);
          if (s.ok) status = s.value.code;
        }
      }
      return status === undefined ? { iaid: r.value.iaid, addrs } : { iaid: r.value.iaid, addrs, status };
    });
}

function topStatus(m: Dhcpv6Message): number | undefined {
  const s = findOption(m.options, O.STATUS_CODE);
  if (!s) return undefined;
  const r = decodeStatus(s);
  return r.ok ? r.value.code : undefined;
}

describe("stateless", () => {
  it("answers INFORMATION-REQUEST with server id, DNS, search list, and the boot URL only when asked", () => {
    const s = server({ bootfileUrl: "tftp://[fec0::2]/pxelinux.0" });
    const r = decode(
      s.handle(msg(T.INFORMATION_REQUEST, [{ code: O.ORO, data: Buffer.from("00170018", "hex") }]), MAC_A, 0),
    );
    expect(r.type).toBe(T.REPLY);
    expect(r.transactionId).toBe(0x123456);
    expect(findOption(r.options, O.SERVER_ID)).toEqual(SERVER);
    expect(findOption(r.options, O.CLIENT_ID)).toEqual(DUID_A);
    expect(findOption(r.options, O.DNS_SERVERS)?.toString("hex")).toBe("fec00000000000000000000000000003");
    expect(decodeNameList(findOption(r.options, O.DOMAIN_LIST) as Buffer)).toEqual({
      ok: true,
      value: ["example.org"],
    });
    expect(findOption(r.options, O.BOOTFILE_URL)).toBeUndefined();
    const boot = decode(
      s.handle(
        msg(T.INFORMATION_REQUEST, [{ code: O.ORO, data: Buffer.from("0017003b", "hex") }], null),
        MAC_A,
        0,
      ),
    );
    expect(findOption(boot.options, O.BOOTFILE_URL)?.toString()).toBe("tftp://[fec0::2]/pxelinux.0");
    expect(findOption(boot.options, O.CLIENT_ID)).toBeUndefined();
    expect(s.stats().informationRequests).toBe(2);
  });

  it("without addresses to give, a SOLICIT gets NoAddrsAvail in its IA", () => {
    const s = server({ stateful: false });
    const r = decode(s.handle(msg(T.SOLICIT, [ia(1)]), MAC_A, 0));
    expect(r.type).toBe(T.ADVERTISE);
    expect(ias(r)).toEqual([{ iaid: 1, addrs: [], status: Dhcpv6Status.NO_ADDRS_AVAIL }]);
    expect(s.leases(0)).toEqual([]);
  });

  it("ignores another server's messages and drops what is malformed", () => {
    const s = server();
    expect(s.handle(msg(T.INFORMATION_REQUEST, [], DUID_A, DUID_B), MAC_A, 0)).toBeUndefined();
    expect(s.handle(msg(T.REQUEST, [ia(1)], DUID_A, DUID_B), MAC_A, 0)).toBeUndefined();
    expect(s.handle(msg(T.SOLICIT, [ia(1)], null), MAC_A, 0)).toBeUndefined();
    expect(s.handle(Buffer.of(1), MAC_A, 0)).toBeUndefined();
    expect(s.handle(msg(T.SOLICIT, [{ code: O.IA_NA, data: Buffer.alloc(3) }]), MAC_A, 0)).toBeUndefined();
    expect(s.handle(msg(T.REPLY, []), MAC_A, 0)).toBeUndefined();
    expect(s.stats().ignored).toEqual({ "dhcpv6-other-server": 2, "dhcpv6-not-a-client-message": 1 });
    expect(s.stats().malformed).toEqual({
      "dhcpv6-no-client-id": 1,
      "dhcpv6-too-short": 1,
      "dhcpv6-ia-na-too-short": 1,
    });
  });
});

describe("stateful", () => {
  it("SOLICIT → ADVERTISE (preference 255), REQUEST → REPLY binding the address", () => {
    const store = new MemoryLease6Store();
    const s = server({}, store);
    const adv = decode(s.handle(msg(T.SOLICIT, [ia(7)]), MAC_A, 1000));
    expect(adv.type).toBe(T.ADVERTISE);
    expect(findOption(adv.options, O.PREFERENCE)).toEqual(Buffer.of(255));
    expect(ias(adv)).toEqual([{ iaid: 7, addrs: [["fec0::15", 86400]] }]);
    expect(store.saves).toBe(0);
    expect(s.leases(1000)[0]?.state).toBe("offered");
    const rep = decode(s.handle(msg(T.REQUEST, [ia(7, "fec0::15")], DUID_A, SERVER), MAC_A, 2000));
    expect(rep.type).toBe(T.REPLY);
    expect(ias(rep)).toEqual([{ iaid: 7, addrs: [["fec0::15", 86400]] }]);
    const iaNa = decodeIaNa(findOption(rep.options, O.IA_NA) as Buffer);
    expect(iaNa.ok && [iaNa.value.t1, iaNa.value.t2]).toEqual([43200, 69120]);
    expect(store.load()).toEqual([
      {
        mac: "52:54:00:12:34:56",
        duid: DUID_A.toString("hex"),
        iaid: 7,
        ip: "fec0::15",
        state: "bound",
        expiresAt: 2000 + DAY,
      },
    ]);
  });

  it("rapid commit: SOLICIT → REPLY with the binding", () => {
    const s = server();
    const r = decode(
      s.handle(msg(T.SOLICIT, [{ code: O.RAPID_COMMIT, data: Buffer.alloc(0) }, ia(1)]), MAC_A, 0),
    );
    expect(r.type).toBe(T.REPLY);
    expect(findOption(r.options, O.RAPID_COMMIT)).toEqual(Buffer.alloc(0));
    expect(s.leases(0).map((l) => [l.ip, l.state])).toEqual([["fec0::15", "bound"]]);
    const off = server({ rapidCommit: false });
    expect(
      decode(off.handle(msg(T.SOLICIT, [{ code: O.RAPID_COMMIT, data: Buffer.alloc(0) }, ia(1)]), MAC_A, 0))
        .type,
    ).toBe(T.ADVERTISE);
  });

  it("gives each IA and each guest its own address, and a guest its address back", () => {
    const s = server();
    s.handle(msg(T.SOLICIT, [{ code: O.RAPID_COMMIT, data: Buffer.alloc(0) }, ia(1), ia(2)]), MAC_A, 0);
    const b = decode(s.handle(msg(T.REQUEST, [ia(1)], DUID_B, SERVER), MAC_B, 0));
    expect(ias(b)).toEqual([{ iaid: 1, addrs: [["fec0::17", 86400]] }]);
    // a REQUEST for another guest's address gets another one, and the asked one with lifetime 0
    const steal = decode(s.handle(msg(T.REQUEST, [ia(9, "fec0::15")], DUID_B, SERVER), MAC_B, 0));
    expect(ias(steal)).toEqual([
      {
        iaid: 9,
        addrs: [
          ["fec0::18", 86400],
          ["fec0::15", 0],
        ],
      },
    ]);
    // the same DUID from another MAC is another guest
    const clone = decode(s.handle(msg(T.SOLICIT, [ia(1)], DUID_A), MAC_B, 0));
    expect(ias(clone)).toEqual([{ iaid: 1, addrs: [], status: Dhcpv6Status.NO_ADDRS_AVAIL }]);
    expect(s.stats().noAddrsAvail).toBe(1);
    // after a release and with a new DUID (a rebooted guest), the MAC's address comes back
    s.handle(msg(T.RELEASE, [ia(1, "fec0::15")], DUID_A, SERVER), MAC_A, 10);
    const back = decode(s.handle(msg(T.SOLICIT, [ia(1)], DUID_B), MAC_A, 20));
    expect(ias(back)[0]?.addrs).toEqual([["fec0::15", 86400]]);
  });

  it("never offers an address another guest uses, nor the gateway's", () => {
    const s = server({ poolStart: v6("fec0::2"), poolSize: 3 }, new MemoryLease6Store(), (a) =>
      ipv6ToString(a) === "fec0::4" ? "52:54:00:00:00:99" : undefined,
    );
    const r = decode(s.handle(msg(T.SOLICIT, [ia(1)]), MAC_A, 0));
    expect(ias(r)).toEqual([{ iaid: 1, addrs: [], status: Dhcpv6Status.NO_ADDRS_AVAIL }]);
    const asks = decode(s.handle(msg(T.REQUEST, [ia(1, "fec0::4")], DUID_A, SERVER), MAC_A, 0));
    expect(ias(asks)[0]?.status).toBe(Dhcpv6Status.NO_ADDRS_AVAIL);
  });

  it("RENEW and REBIND extend the binding; RENEW of an unknown address outside the prefix is NoBinding", () => {
    const s = server();
    s.handle(msg(T.SOLICIT, [{ code: O.RAPID_COMMIT, data: Buffer.alloc(0) }, ia(1)]), MAC_A, 0);
    const renew = decode(s.handle(msg(T.RENEW, [ia(1, "fec0::15")], DUID_A, SERVER), MAC_A, DAY / 2));
    expect(ias(renew)[0]?.addrs).toEqual([["fec0::15", 86400]]);
    expect(s.leases(0)[0]?.expiresAt).toBe(DAY / 2 + DAY);
    const rebind = decode(s.handle(msg(T.REBIND, [ia(1, "fec0::15")]), MAC_A, DAY));
    expect(ias(rebind)[0]?.addrs).toEqual([["fec0::15", 86400]]);
    const none = decode(s.handle(msg(T.RENEW, [ia(5, "2001:db8::1")], DUID_A, SERVER), MAC_A, DAY));
    expect(ias(none)).toEqual([{ iaid: 5, addrs: [], status: Dhcpv6Status.NO_BINDING }]);
    expect(s.stats()).toMatchObject({ renews: 2, rebinds: 1 });
  });

  it("DECLINE keeps the address out of use for the hold time", () => {
    const s = server({ poolSize: 1 });
    s.handle(msg(T.SOLICIT, [{ code: O.RAPID_COMMIT, data: Buffer.alloc(0) }, ia(1)]), MAC_A, 0);
    const r = decode(s.handle(msg(T.DECLINE, [ia(1, "fec0::15")], DUID_A, SERVER), MAC_A, 0));
    expect(topStatus(r)).toBe(Dhcpv6Status.SUCCESS);
    expect(ias(decode(s.handle(msg(T.SOLICIT, [ia(1)], DUID_B), MAC_B, 1000)))[0]?.status).toBe(
      Dhcpv6Status.NO_ADDRS_AVAIL,
    );
    expect(ias(decode(s.handle(msg(T.SOLICIT, [ia(1)], DUID_B), MAC_B, 601_000)))[0]?.addrs).toEqual([
      ["fec0::15", 86400],
    ]);
  });

  it("CONFIRM says whether the addresses are on link, and stays silent without any", () => {
    const s = server();
    expect(topStatus(decode(s.handle(msg(T.CONFIRM, [ia(1, "fec0::99")]), MAC_A, 0)))).toBe(
      Dhcpv6Status.SUCCESS,
    );
    expect(topStatus(decode(s.handle(msg(T.CONFIRM, [ia(1, "2001:db8::1")]), MAC_A, 0)))).toBe(
      Dhcpv6Status.NOT_ON_LINK,
    );
    expect(s.handle(msg(T.CONFIRM, [ia(1)]), MAC_A, 0)).toBeUndefined();
  });

  it("one MAC holds at most maxPerMac leases", () => {
    const s = server({ maxPerMac: 2 });
    for (let i = 1; i <= 4; i++)
      s.handle(msg(T.SOLICIT, [{ code: O.RAPID_COMMIT, data: Buffer.alloc(0) }, ia(i)]), MAC_A, i);
    expect(s.leases(10)).toHaveLength(2);
    expect(
      s
        .leases(10)
        .map((l) => l.iaid)
        .sort(),
    ).toEqual([3, 4]);
  });
});

describe("persistence", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it("a restarted server gives the guest its address back from the state dir", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dhcpv6-"));
    dirs.push(dir);
    const s1 = server({}, new FileLease6Store(dir, "dhcpv6-leases-n0.json", silentLogger));
    s1.handle(msg(T.SOLICIT, [ia(1)], DUID_B), MAC_B, 0);
    s1.handle(msg(T.REQUEST, [ia(1)], DUID_B, SERVER), MAC_B, 0);
    expect(await s1.pendingSave()).toBe(true);
    const s2 = server({}, new FileLease6Store(dir, "dhcpv6-leases-n0.json", silentLogger));
    expect(s2.leases(0).map((l) => [l.ip, l.mac, l.state])).toEqual([
      ["fec0::15", "52:54:00:12:34:57", "bound"],
    ]);
    // another guest does not get it
    expect(ias(decode(s2.handle(msg(T.SOLICIT, [ia(1)]), MAC_A, 1)))[0]?.addrs).toEqual([
      ["fec0::16", 86400],
    ]);
  });
});
