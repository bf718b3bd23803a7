import { describe, expect, it } from "vitest";
import { tokenizeConfigFile } from "../../../src/cli/config-file.js";
import { UsageError } from "../../../src/cli/usage-error.js";

const tok = (s: string) => tokenizeConfigFile(s, "--config f");

describe("tokenizeConfigFile", () => {
  it("splits on any whitespace", () => {
    expect(tok("-netdev user,id=n0\n\t-redir   tcp:2222::22\r\n")).toEqual([
      "-netdev",
      "user,id=n0",
      "-redir",
      "tcp:2222::22",
    ]);
  });

  it("drops comments to the end of the line", () => {
    expect(tok("# a usernet config\n-netdev user,id=n0 # the LAN\n  #-redir x\n--log-level debug")).toEqual([
      "-netdev",
      "user,id=n0",
      "--log-level",
      "debug",
    ]);
  });

  it("keeps # inside a token and inside quotes", () => {
    expect(tok('-netdev user,id=n0,hostname=a#b "#not a comment"')).toEqual([
      "-netdev",
      "user,id=n0,hostname=a#b",
      "#not a comment",
    ]);
  });

  it("joins quoted parts to their token, as a shell does", () => {
    expect(tok(`-netdev user,id=n0,tftp="/srv/my tftp",smb='/srv/a "b"'`)).toEqual([
      "-netdev",
      `user,id=n0,tftp=/srv/my tftp,smb=/srv/a "b"`,
    ]);
  });

  it("knows two escapes in double quotes and none in single quotes", () => {
    expect(tok(String.raw`"a\"b\\c\d" 'e\'`)).toEqual([String.raw`a"b\c\d`, String.raw`e\ `.trim()]);
  });

  it("keeps empty quoted tokens and quoted newlines", () => {
    expect(tok(`--state-dir "" "a\nb"`)).toEqual(["--state-dir", "", "a\nb"]);
  });

  it("is empty for an empty or comment-only file", () => {
    expect(tok("")).toEqual([]);
    expect(tok("# nothing\n\n")).toEqual([]);
  });

  it("reports an unterminated quote with its line", () => {
    expect(() => tok('-netdev user,id=n0\n--state-dir "/var/lib\n')).toThrow(
      new UsageError('--config f: line 2: unterminated " quote'),
    );
    expect(() => tok("'")).toThrow(new UsageError("--config f: line 1: unterminated ' quote"));
  });
});
