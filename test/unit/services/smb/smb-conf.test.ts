import { describe, expect, it } from "vitest";
import { smbConf, smbConfValueProblem, smbRunSubdirs } from "../../../../src/services/smb/smb-conf.js";

const base = { shareDir: "/srv/share", runDir: "/tmp/usernet-smb.abc", user: "alice" };

/** smb.conf as section → key → value (keys as written; samba ignores case and blanks) */
function parse(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section: Map<string, string> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head?.[1]) {
      section = new Map();
      out.set(head[1], section);
      continue;
    }
    const eq = line.indexOf("=");
    expect(eq, line).toBeGreaterThan(0);
    expect(section, line).toBeDefined();
    const key = line.slice(0, eq).trim();
    expect(section?.has(key), `duplicate ${key}`).toBe(false);
    section?.set(key, line.slice(eq + 1).trim());
  }
  return out;
}

describe("smbConf", () => {
  it("writes one writable guest share and a standalone server with nothing to listen on", () => {
    const conf = parse(smbConf(base));
    expect([...conf.keys()]).toEqual(["global", "qemu"]);
    const g = conf.get("global");
    // each smbd serves the connection on its stdin: no ports, no interfaces
    expect(g?.has("interfaces")).toBe(false);
    expect(g?.has("smb ports")).toBe(false);
    expect(g?.get("hostname lookups")).toBe("no");
    expect(g?.get("disable netbios")).toBe("yes");
    expect(g?.get("server role")).toBe("standalone server");
    expect(g?.get("map to guest")).toBe("Bad User");
    expect(g?.get("guest account")).toBe("alice");
    expect(g?.get("load printers")).toBe("no");
    expect(g?.get("disable spoolss")).toBe("yes");
    const q = conf.get("qemu");
    expect(q?.get("path")).toBe("/srv/share");
    expect(q?.get("read only")).toBe("no");
    expect(q?.get("guest ok")).toBe("yes");
    expect(q?.get("force user")).toBe("alice");
    expect(q?.get("create mask")).toBe("0600");
    expect(q?.get("directory mask")).toBe("0700");
  });

  it("keeps every file smbd writes inside the run directory", () => {
    const g = parse(smbConf(base)).get("global");
    for (const key of [
      "pid directory",
      "lock directory",
      "state directory",
      "cache directory",
      "private dir",
      "ncalrpc dir",
      "smb passwd file",
      "log file",
    ]) {
      const v = g?.get(key) ?? "";
      expect(v === base.runDir || v.startsWith(`${base.runDir}/`), `${key} = ${v}`).toBe(true);
    }
    for (const sub of smbRunSubdirs) expect(smbConf(base)).toContain(`${base.runDir}/${sub}`);
  });

  it("refuses values smb.conf cannot carry as they are", () => {
    expect(smbConfValueProblem("/srv/ok dir")).toBeUndefined();
    for (const bad of ["/srv/a\n[evil]", "/srv/%u", " /srv/x", "/srv/x ", "", "/srv/\0"]) {
      expect(smbConfValueProblem(bad), JSON.stringify(bad)).toBeDefined();
      expect(() => smbConf({ ...base, shareDir: bad }), JSON.stringify(bad)).toThrow(
        /smb\.conf cannot carry it/,
      );
    }
    expect(() => smbConf({ ...base, user: "a\nb" })).toThrow(/user name/);
  });
});
