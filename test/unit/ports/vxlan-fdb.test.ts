/** The VXLAN forwarding table: learning, ageing, the bound, group MACs. */
import { describe, expect, it } from "vitest";
import { VxlanFdb } from "../../../src/ports/vxlan-fdb.js";

const frame = (dst: string, src: string) => Buffer.from(`${dst}${src}0800`, "hex");
const a = { host: "192.0.2.1", port: 4789 };
const b = { host: "192.0.2.2", port: 4789 };

describe("VxlanFdb", () => {
  it("learns source MACs and finds them as destinations; group MACs flood", () => {
    const fdb = new VxlanFdb(300_000, 8);
    fdb.learn(frame("ffffffffffff", "525400000001"), a, 0);
    expect(fdb.lookup(frame("525400000001", "525400000099"), 10)).toEqual(a);
    expect(fdb.lookup(frame("525400000002", "525400000099"), 10)).toBeUndefined();
    // a group source is never learned, a group destination never looked up
    fdb.learn(frame("525400000001", "010000000001"), a, 0);
    expect(fdb.lookup(frame("010000000001", "525400000099"), 10)).toBeUndefined();
    // moved to another VTEP
    fdb.learn(frame("ffffffffffff", "525400000001"), b, 20);
    expect(fdb.lookup(frame("525400000001", "525400000099"), 30)).toEqual(b);
    expect(fdb.list(30)).toEqual([{ mac: "52:54:00:00:00:01", vtep: "192.0.2.2:4789", ageMs: 10 }]);
  });

  it("ages entries out", () => {
    const fdb = new VxlanFdb(1000, 8);
    fdb.learn(frame("ffffffffffff", "525400000001"), a, 0);
    expect(fdb.lookup(frame("525400000001", "525400000099"), 999)).toEqual(a);
    expect(fdb.lookup(frame("525400000001", "525400000099"), 1000)).toBeUndefined();
    expect(fdb.size(1000)).toBe(0);
  });

  it("holds at most maxEntries, evicting the least recently learned", () => {
    const fdb = new VxlanFdb(300_000, 3);
    for (let i = 1; i <= 3; i++) fdb.learn(frame("ffffffffffff", `52540000000${i}`), a, i);
    fdb.learn(frame("ffffffffffff", "525400000001"), b, 4); // refreshed: now the newest
    fdb.learn(frame("ffffffffffff", "525400000004"), a, 5);
    expect(fdb.size(5)).toBe(3);
    expect(fdb.evicted).toBe(1);
    expect(fdb.lookup(frame("525400000002", "525400000099"), 5)).toBeUndefined();
    expect(fdb.lookup(frame("525400000001", "525400000099"), 5)).toEqual(b);
    for (let i = 0; i < 10_000; i++)
      fdb.learn(frame("ffffffffffff", (0x525400100000 + i).toString(16)), a, 6);
    expect(fdb.size(6)).toBe(3);
  });

  it("ignores frames too short to hold the MACs", () => {
    const fdb = new VxlanFdb();
    fdb.learn(Buffer.alloc(5), a, 0);
    expect(fdb.lookup(Buffer.alloc(3), 0)).toBeUndefined();
    expect(fdb.size(0)).toBe(0);
  });
});
