/**
 * QEMU's option-string grammar, as in `-netdev user,id=n0,net=10.0.2.0/24`.
 *
 * Items are separated by single commas; ",," inside an item is a literal comma (so a
 * value can hold one: `hostname=a,,b` is "a,b"). One trailing comma is ignored, as in
 * QEMU. The first item names the type when it has no '=' (`type=user` works too). Any
 * later item without '=' is QEMU's deprecated short boolean: `restrict` means
 * restrict=on and `norestrict` restrict=off; it is accepted only for boolean keys.
 *
 * Deliberately unlike QEMU: a single-valued key given twice is an error (QEMU silently
 * keeps the last one), and only the keys a netdev type declares are accepted. Booleans
 * take QEMU's spellings: on/off, yes/no, true/false, y/n.
 */
import { UsageError } from "./usage-error.js";

export interface QemuOptItem {
  key: string;
  value: string;
  /** written without '=' */
  bare: boolean;
}

export interface QemuOptString {
  /** undefined when the string does not name one */
  type: string | undefined;
  items: QemuOptItem[];
}

/** splits at single commas and unescapes ",,"; drops one trailing empty item */
export function splitQemuItems(s: string): string[] {
  const items: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch !== ",") {
      cur += ch;
    } else if (s[i + 1] === ",") {
      cur += ",";
      i++;
    } else {
      items.push(cur);
      cur = "";
    }
  }
  if (cur !== "" || items.length === 0) items.push(cur);
  return items;
}

/** the inverse for one value: every comma doubled */
export const escapeQemuValue = (v: string): string => v.replaceAll(",", ",,");

export function parseQemuOptString(s: string): QemuOptString {
  const raw = splitQemuItems(s);
  let type: string | undefined;
  const items: QemuOptItem[] = [];
  raw.forEach((item, i) => {
    const eq = item.indexOf("=");
    if (eq < 0) {
      if (i === 0) type = item;
      else items.push({ key: item, value: "", bare: true });
    } else {
      items.push({ key: item.slice(0, eq), value: item.slice(eq + 1), bare: false });
    }
  });
  if (type === undefined) {
    const explicit = items.findIndex((it) => it.key === "type");
    if (explicit >= 0) {
      type = items[explicit]?.value;
      items.splice(explicit, 1);
    }
  }
  return { type, items };
}

export type OptionKind = "value" | "list" | "bool";

export interface OptionSpec {
  kind: OptionKind;
  /** the accepted form, quoted in errors: "ADDR[/PREFIX] such as net=10.0.2.0/24" */
  form: string;
}

const trueWords = new Set(["on", "yes", "true", "y"]);
const falseWords = new Set(["off", "no", "false", "n"]);

/**
 * The items of one option string checked against a table of accepted keys. `where`
 * prefixes every error ("-netdev user"); `refused` maps keys QEMU knows but usernet
 * does not take to the reason given.
 */
export class OptionSet {
  private readonly values = new Map<string, string[]>();

  constructor(
    readonly where: string,
    items: readonly QemuOptItem[],
    private readonly spec: Readonly<Record<string, OptionSpec>>,
    refused: Readonly<Record<string, string>> = {},
  ) {
    for (const item of items) {
      let { key, value } = item;
      const reason = refused[key];
      if (reason !== undefined) {
        throw new UsageError(`${where}: ${item.bare ? key : `${key}=${value}`}: ${reason}`);
      }
      let s = spec[key];
      if (item.bare) {
        const positive = key.startsWith("no") ? spec[key.slice(2)] : undefined;
        if (s?.kind === "bool") {
          value = "on";
        } else if (s === undefined && positive?.kind === "bool") {
          key = key.slice(2);
          s = positive;
          value = "off";
        } else if (s !== undefined) {
          throw new UsageError(`${where}: ${key}: needs a value: expected ${s.form}`);
        }
      }
      if (s === undefined) {
        throw new UsageError(`${where}: unknown option "${key}" (accepted: ${Object.keys(spec).join(", ")})`);
      }
      const prev = this.values.get(key);
      if (prev === undefined) {
        this.values.set(key, [value]);
      } else if (s.kind === "list") {
        prev.push(value);
      } else {
        const lists = Object.keys(spec).filter((k) => spec[k]?.kind === "list");
        const repeatable = lists.length > 0 ? `only ${lists.join(", ")} may repeat` : "none may repeat";
        throw new UsageError(`${where}: ${key}= given twice (${repeatable})`);
      }
    }
  }

  has(key: string): boolean {
    return this.values.has(key);
  }

  /** the value of a single-valued key */
  get(key: string): string | undefined {
    return this.values.get(key)?.[0];
  }

  /** every value of a repeatable key, in order */
  list(key: string): string[] {
    return this.values.get(key) ?? [];
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (trueWords.has(v)) return true;
    if (falseWords.has(v)) return false;
    return this.fail(key, v);
  }

  /** throws "<where>: key=value: <detail>", detail defaulting to the key's accepted form */
  fail(key: string, value: string, detail?: string): never {
    const form = this.spec[key]?.form ?? "";
    throw new UsageError(`${this.where}: ${key}=${value}: ${detail ?? `expected ${form}`}`);
  }
}
