/**
 * TFTP packets (RFC 1350) with option extension (RFC 2347): RRQ, WRQ, DATA, ACK,
 * ERROR, OACK. One decoder for untrusted bytes, one encoder; no state, no I/O.
 *
 * Theory of operation
 * - `decodeTftp` checks everything once and returns a `Result`; it never throws. The
 *   returned DATA payload is a view into the input (no copy).
 * - Strings (file name, mode, option names and values, error messages) are NUL
 *   terminated and decoded as strict UTF-8: invalid bytes fail with
 *   "tftp-bad-string" rather than being mangled into a different file name.
 * - The mode is matched case-insensitively and returned lower-case; anything but
 *   netascii, octet and mail fails with "tftp-unknown-mode".
 * - Options are kept as received (name spelling and order, duplicates included): what
 *   to accept is the server's business (see `tftpOptionNumber` for the values).
 *   Trailing NUL padding after the last option is tolerated (some PXE ROMs pad their
 *   requests); an option name without a value is not.
 * - An ERROR whose message lacks its terminating NUL is accepted (the message runs to
 *   the end), as are extra bytes after an ACK: neither harms, and clients send both.
 * Not done: limits on request length (RFC 2347 says 512 bytes; longer requests are
 *   accepted), validation of option values (the server does that).
 */
import { fail, ok, type Result } from "../../stack/wire/result.js";

export const TFTP_PORT = 69;

export const TftpOpcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** RFC 1350 error codes, plus 8 from RFC 2347. */
export const TftpErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TRANSFER_ID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;

export type TftpMode = "netascii" | "octet" | "mail";

export interface TftpOption {
  name: string;
  value: string;
}

export type TftpPacket =
  | { op: "rrq" | "wrq"; filename: string; mode: TftpMode; options: TftpOption[] }
  | { op: "data"; block: number; data: Buffer }
  | { op: "ack"; block: number }
  | { op: "error"; code: number; message: string }
  | { op: "oack"; options: TftpOption[] };

/** Bytes of opcode and block number in front of a DATA payload. */
export const TFTP_DATA_HEADER_LENGTH = 4;

const MODES: readonly TftpMode[] = ["netascii", "octet", "mail"];
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads NUL-terminated strings from `b`, starting at `at`. */
class Strings {
  constructor(
    private readonly b: Buffer,
    public at: number,
  ) {}

  get done(): boolean {
    return this.at >= this.b.length;
  }

  /** The next string; `allowUnterminated` lets it run to the end of the buffer. */
  next(allowUnterminated = false): Result<string> {
    const end = this.b.indexOf(0, this.at);
    if (end < 0 && !allowUnterminated) return fail("tftp-unterminated-string");
    const stop = end < 0 ? this.b.length : end;
    let s: string;
    try {
      s = utf8.decode(this.b.subarray(this.at, stop));
    } catch {
      return fail("tftp-bad-string");
    }
    this.at = end < 0 ? stop : end + 1;
    return ok(s);
  }

  /** True when everything left is NUL padding. */
  restIsPadding(): boolean {
    for (let i = this.at; i < this.b.length; i++) if (this.b[i] !== 0) return false;
    return true;
  }
}

function decodeOptions(s: Strings): Result<TftpOption[]> {
  const options: TftpOption[] = [];
  while (!s.done) {
    const start = s.at;
    const name = s.next();
    if (!name.ok) return name;
    if (name.value === "") {
      s.at = start;
      if (s.restIsPadding()) break;
      return fail("tftp-empty-option-name");
    }
    if (s.done) return fail("tftp-option-without-value");
    const value = s.next();
    if (!value.ok) return value;
    options.push({ name: name.value, value: value.value });
  }
  return ok(options);
}

/** Decodes one TFTP packet (a UDP payload). */
export function decodeTftp(b: Buffer): Result<TftpPacket> {
  if (b.length < 2) return fail("tftp-truncated");
  const opcode = b.readUInt16BE(0);
  switch (opcode) {
    case TftpOpcode.RRQ:
    case TftpOpcode.WRQ: {
      const s = new Strings(b, 2);
      const filename = s.next();
      if (!filename.ok) return filename;
      if (filename.value === "") return fail("tftp-empty-filename");
      const modeName = s.next();
      if (!modeName.ok) return modeName;
      const mode = MODES.find((m) => m === modeName.value.toLowerCase());
      if (mode === undefined) return fail("tftp-unknown-mode");
      const options = decodeOptions(s);
      if (!options.ok) return options;
      const op = opcode === TftpOpcode.RRQ ? "rrq" : "wrq";
      return ok({ op, filename: filename.value, mode, options: options.value });
    }
    case TftpOpcode.DATA:
      if (b.length < 4) return fail("tftp-truncated");
      return ok({ op: "data", block: b.readUInt16BE(2), data: b.subarray(4) });
    case TftpOpcode.ACK:
      if (b.length < 4) return fail("tftp-truncated");
      return ok({ op: "ack", block: b.readUInt16BE(2) });
    case TftpOpcode.ERROR: {
      if (b.length < 4) return fail("tftp-truncated");
      const message = new Strings(b, 4).next(true);
      if (!message.ok) return message;
      return ok({ op: "error", code: b.readUInt16BE(2), message: message.value });
    }
    case TftpOpcode.OACK: {
      const options = decodeOptions(new Strings(b, 2));
      if (!options.ok) return options;
      return ok({ op: "oack", options: options.value });
    }
    default:
      return fail("tftp-unknown-opcode");
  }
}

/** The opcode of a payload that may not decode, for deciding whether to answer it. */
export function tftpOpcodeOf(b: Buffer): number | undefined {
  return b.length >= 2 ? b.readUInt16BE(0) : undefined;
}

const strLen = (s: string) => Buffer.byteLength(s, "utf8") + 1;
const optionsLen = (o: readonly TftpOption[]) => o.reduce((n, x) => n + strLen(x.name) + strLen(x.value), 0);

export function tftpEncodingLength(p: TftpPacket): number {
  switch (p.op) {
    case "rrq":
    case "wrq":
      return 2 + strLen(p.filename) + strLen(p.mode) + optionsLen(p.options);
    case "data":
      return 4 + p.data.length;
    case "ack":
      return 4;
    case "error":
      return 4 + strLen(p.message);
    case "oack":
      return 2 + optionsLen(p.options);
  }
}

const OPCODE: Record<TftpPacket["op"], number> = {
  rrq: TftpOpcode.RRQ,
  wrq: TftpOpcode.WRQ,
  data: TftpOpcode.DATA,
  ack: TftpOpcode.ACK,
  error: TftpOpcode.ERROR,
  oack: TftpOpcode.OACK,
};

/**
 * Writes `p` into `out` at `at`; returns the bytes written. Strings must not contain
 * NUL (ours never do); `out` must hold `tftpEncodingLength(p)` bytes from `at`.
 */
export function encodeTftpInto(p: TftpPacket, out: Buffer, at = 0): number {
  let o = out.writeUInt16BE(OPCODE[p.op], at);
  const str = (s: string) => {
    o += out.write(s, o, "utf8");
    o = out.writeUInt8(0, o);
  };
  switch (p.op) {
    case "rrq":
    case "wrq":
      str(p.filename);
      str(p.mode);
      for (const x of p.options) {
        str(x.name);
        str(x.value);
      }
      break;
    case "data":
      o = out.writeUInt16BE(p.block & 0xffff, o);
      o += p.data.copy(out, o);
      break;
    case "ack":
      o = out.writeUInt16BE(p.block & 0xffff, o);
      break;
    case "error":
      o = out.writeUInt16BE(p.code & 0xffff, o);
      str(p.message);
      break;
    case "oack":
      for (const x of p.options) {
        str(x.name);
        str(x.value);
      }
      break;
  }
  return o - at;
}

/** Encodes `p` into a new buffer of exactly its length. */
export function encodeTftp(p: TftpPacket): Buffer {
  const out = Buffer.allocUnsafe(tftpEncodingLength(p));
  encodeTftpInto(p, out, 0);
  return out;
}

/**
 * An option value as a number: decimal digits only (no sign, no spaces, no hex, at
 * most 10 digits), else undefined. RFC 2347 values are "ASCII numbers".
 */
export function tftpOptionNumber(value: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(value)) return undefined;
  return Number(value);
}
