import { describe, expect, it } from "vitest";
import { ArpTable } from "../../../src/stack/arp-table.js";

const mac = (n: number) => Buffer.from([0x52, 0x54, 0, 0, 0, n]);

describe("ArpTable", () => {
  it("learns, follows a move to a new MAC, and keeps its own copy", () => {
    const t = new ArpTable();
    const m = mac(1);
    t.learn(0x0a00020f, m);
    m[5] = 99; // the frame's memory is reused
    expect(t.lookup(0x0a00020f)).toEqual(mac(1));
    t.learn(0x0a00020f, mac(2));
    expect(t.lookup(0x0a00020f)).toEqual(mac(2));
    expect(t.size).toBe(1);
  });

  it("forgets the least recently refreshed entry past its capacity", () => {
    const t = new ArpTable(3);
    t.learn(1, mac(1));
    t.learn(2, mac(2));
    t.learn(3, mac(3));
    t.learn(1, mac(1)); // refresh: 2 is now the oldest
    t.learn(1, mac(1)); // refreshing the newest again changes nothing
    t.learn(4, mac(4));
    expect(t.lookup(2)).toBeUndefined();
    expect([1, 3, 4].map((ip) => t.lookup(ip)?.[5])).toEqual([1, 3, 4]);
    t.learn(3, mac(3)); // 1 is the oldest now
    t.learn(5, mac(5));
    expect(t.lookup(1)).toBeUndefined();
    expect(t.size).toBe(3);
  });
});
