import { describe, expect, it } from "vitest";
import { LogTail } from "../../src/log-tail.js";

describe("LogTail", () => {
  it("keeps the last lines written through tee, whole lines only, and tells subscribers", () => {
    const tail = new LogTail(3);
    const out: string[] = [];
    const seen: string[] = [];
    const stream = tail.tee({ write: (s) => out.push(s) });
    const off = tail.subscribe((l) => seen.push(l));
    stream.write("one\ntw");
    expect(tail.lines()).toEqual(["one"]);
    stream.write("o\nthree\nfour\n");
    expect(tail.lines()).toEqual(["two", "three", "four"]);
    expect(seen).toEqual(["one", "two", "three", "four"]);
    expect(out.join("")).toBe("one\ntwo\nthree\nfour\n");
    off();
    stream.write("five\n");
    expect(seen).toHaveLength(4);
  });

  it("cuts a long line to 4 KiB", () => {
    const tail = new LogTail();
    tail.push(`${"x".repeat(10_000)}\n`);
    expect(tail.lines()[0]).toHaveLength(4096);
  });
});
