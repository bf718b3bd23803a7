import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  escapeQemuValue,
  OptionSet,
  type OptionSpec,
  parseQemuOptString,
  splitQemuItems,
} from "../../../src/cli/qemu-opts.js";
import { UsageError } from "../../../src/cli/usage-error.js";

describe("splitQemuItems", () => {
  it.each([
    ["user,id=n0", ["user", "id=n0"]],
    ["user,hostname=a,,b", ["user", "hostname=a,b"]],
    ["a,,,b", ["a,", "b"]],
    ["a,,,,b", ["a,,b"]],
    ["user,id=n0,", ["user", "id=n0"]],
    ["", [""]],
    [",id=x", ["", "id=x"]],
    ["x=,,", ["x=,"]],
  ])("%j → %j", (s, items) => {
    expect(splitQemuItems(s)).toEqual(items);
  });

  // An item that starts with a comma cannot follow a separator unambiguously (",,,"),
  // in QEMU too; real items start with their key, so that is the property to hold.
  const arbItem = fc.tuple(fc.stringMatching(/^[a-z][a-z.-]{0,8}$/), fc.string());
  test.prop([fc.array(arbItem, { minLength: 1, maxLength: 6 })])(
    "escaped values come back whole",
    (items) => {
      const s = ["user", ...items.map(([k, v]) => `${k}=${escapeQemuValue(v)}`)].join(",");
      expect(parseQemuOptString(s)).toEqual({
        type: "user",
        items: items.map(([key, value]) => ({ key, value, bare: false })),
      });
    },
  );
});

describe("parseQemuOptString", () => {
  it("takes the type from the first bare item", () => {
    expect(parseQemuOptString("user,id=n0,restrict")).toEqual({
      type: "user",
      items: [
        { key: "id", value: "n0", bare: false },
        { key: "restrict", value: "", bare: true },
      ],
    });
  });
  it("takes type= anywhere when the first item has a value", () => {
    expect(parseQemuOptString("id=n0,type=user")).toEqual({
      type: "user",
      items: [{ key: "id", value: "n0", bare: false }],
    });
  });
  it("has no type otherwise", () => {
    expect(parseQemuOptString("id=n0").type).toBeUndefined();
  });
  it("keeps '=' inside values", () => {
    expect(parseQemuOptString("user,guestfwd=tcp:10.0.2.100:1-cmd:a=b").items).toEqual([
      { key: "guestfwd", value: "tcp:10.0.2.100:1-cmd:a=b", bare: false },
    ]);
  });
});

describe("OptionSet", () => {
  const spec: Record<string, OptionSpec> = {
    net: { kind: "value", form: "NET such as net=1" },
    on: { kind: "bool", form: "on or off such as on=on" },
    fwd: { kind: "list", form: "FWD" },
  };
  const set = (s: string) =>
    new OptionSet("-x y", parseQemuOptString(`y,${s}`).items, spec, { bad: "no way" });
  /** builds the set and reads every key, returning the first error message */
  const message = (s: string) => {
    try {
      const o = set(s);
      o.get("net");
      o.bool("on", false);
    } catch (e) {
      if (e instanceof UsageError) return e.message;
      throw e;
    }
    return "no error";
  };

  it("reads values, lists and booleans", () => {
    const o = set("net=1,fwd=a,fwd=b,on=yes");
    expect(o.get("net")).toBe("1");
    expect(o.list("fwd")).toEqual(["a", "b"]);
    expect(o.list("none")).toEqual([]);
    expect(o.bool("on", false)).toBe(true);
    expect(o.has("net")).toBe(true);
    expect(o.has("fwd")).toBe(true);
  });

  it.each([
    ["on", true],
    ["yes", true],
    ["true", true],
    ["y", true],
    ["off", false],
    ["no", false],
    ["false", false],
    ["n", false],
  ])("boolean %s", (word, value) => {
    expect(set(`on=${word}`).bool("on", !value)).toBe(value);
  });

  it("takes QEMU's short booleans", () => {
    expect(set("on").bool("on", false)).toBe(true);
    expect(set("noon").bool("on", true)).toBe(false);
  });

  it.each([
    ["on=1", "-x y: on=1: expected on or off such as on=on"],
    ["On=on", '-x y: unknown option "On" (accepted: net, on, fwd)'],
    ["net", "-x y: net: needs a value: expected NET such as net=1"],
    ["nonet", '-x y: unknown option "nonet" (accepted: net, on, fwd)'],
    ["net=1,net=2", "-x y: net= given twice (only fwd may repeat)"],
    ["on=on,on=off", "-x y: on= given twice (only fwd may repeat)"],
    ["bad=1", "-x y: bad=1: no way"],
    ["bad", "-x y: bad: no way"],
    ["=1", '-x y: unknown option "" (accepted: net, on, fwd)'],
  ])("%s → %s", (s, msg) => {
    expect(message(s)).toBe(msg);
  });
});
