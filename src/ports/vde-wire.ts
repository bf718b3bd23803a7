/**
 * VDE's control-socket handshake, as libvdeplug and vde_switch speak it (vde2's
 * datasock.c, vdeplug4's libvdeplug_vde.c): the codec, no I/O.
 *
 * Theory of operation
 * - A client connects a unix *stream* socket to SWITCHDIR/ctl and sends one
 *   `request_v3` in one write: magic 0xfeedface, version 3, a request type, the
 *   `sockaddr_un` of a unix *datagram* socket the client has bound (where the switch
 *   must send its frames), and a free-text description of at most 128 bytes, not
 *   NUL-terminated (only strlen(description) bytes are sent). Every integer is in the
 *   host's byte order: the switch and its clients share one machine.
 * - The request type: the low 8 bits are REQ_NEW_CONTROL (0) or REQ_NEW_PORT0 (1,
 *   the management port); for REQ_NEW_CONTROL the bits above are the port number
 *   asked for (0: any free port).
 * - The switch answers with one `sockaddr_un` (110 bytes): the datagram socket it
 *   made for this port, already connected to the client's. The client connects its
 *   own socket to it; from then on each datagram is one Ethernet frame, both ways.
 *   The port lives as long as the control stream: closing it ends the port.
 * - `struct sockaddr_un` is sun_family (2 bytes, AF_UNIX = 1) and sun_path (108
 *   bytes, a NUL-terminated path). Abstract addresses (a leading NUL) are refused.
 * - Decoding never throws: bad input gives a reason for the caller to count.
 * - Not here: the request_v1 of vde 1.x (no version field), VDE's stream and p2p
 *   protocols, vxvde and the other vdeplug4 URL schemes.
 */
import { endianness } from "node:os";

export const vdeSwitchMagic = 0xfeedface;
export const vdeRequestVersion = 3;
export const vdeMaxDescription = 128;
/** bytes of sun_path, including its terminating NUL */
export const sunPathLength = 108;
export const sockaddrUnLength = 2 + sunPathLength;
/** magic, version, type and the sockaddr_un: the request without its description */
export const vdeRequestFixedLength = 12 + sockaddrUnLength;
export const vdeRequestMaxLength = vdeRequestFixedLength + vdeMaxDescription;
const afUnix = 1;
const reqNewControl = 0;
const reqNewPort0 = 1;
/** the highest port a request can name (vde_switch's own limit is its -n, by default 32) */
export const vdeMaxPort = 0xffffff;

const F = { magic: 0, version: 4, type: 8, sockaddr: 12, description: vdeRequestFixedLength } as const;

const le = endianness() === "LE";
const readU32 = (b: Buffer, at: number) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
const readU16 = (b: Buffer, at: number) => (le ? b.readUInt16LE(at) : b.readUInt16BE(at));
const writeU32 = (b: Buffer, v: number, at: number) => (le ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
const writeU16 = (b: Buffer, v: number, at: number) => (le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));

export type VdeResult<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface VdeRequest {
  /** "port0" is vde_switch's management port (REQ_NEW_PORT0) */
  kind: "control" | "port0";
  /** the port asked for; 0: any */
  port: number;
  /** the client's datagram socket */
  path: string;
  /** printable ASCII only when decoded (anything else becomes "?") */
  description: string;
}

/** The request as a client sends it: the fixed part and the description's bytes, no NUL. */
export function encodeVdeRequest(r: VdeRequest): Buffer {
  const descr = Buffer.from(r.description, "utf8").subarray(0, vdeMaxDescription);
  const out = Buffer.alloc(vdeRequestFixedLength + descr.length);
  writeU32(out, vdeSwitchMagic, F.magic);
  writeU32(out, vdeRequestVersion, F.version);
  const type = r.kind === "port0" ? reqNewPort0 : ((r.port & vdeMaxPort) << 8) >>> 0;
  writeU32(out, type, F.type);
  encodeSockaddrUn(r.path, out, F.sockaddr);
  descr.copy(out, F.description);
  return out;
}

/**
 * A request read from a control stream: `b` holds at least the fixed part; bytes
 * after it, up to 128, are the description (it ends at a NUL if there is one).
 */
export function decodeVdeRequest(b: Buffer): VdeResult<VdeRequest> {
  if (b.length < 4) return { ok: false, reason: "request-too-short" };
  if (readU32(b, F.magic) !== vdeSwitchMagic) return { ok: false, reason: "request-bad-magic" };
  if (b.length < F.type) return { ok: false, reason: "request-too-short" };
  if (readU32(b, F.version) !== vdeRequestVersion) return { ok: false, reason: "request-bad-version" };
  if (b.length < vdeRequestFixedLength) return { ok: false, reason: "request-too-short" };
  const type = readU32(b, F.type);
  const low = type & 0xff;
  if (low !== reqNewControl && low !== reqNewPort0) return { ok: false, reason: "request-bad-type" };
  const path = decodeSockaddrUn(b.subarray(F.sockaddr, F.sockaddr + sockaddrUnLength));
  if (!path.ok) return path;
  const rest = b.subarray(F.description, F.description + vdeMaxDescription);
  const nul = rest.indexOf(0);
  return {
    ok: true,
    value: {
      kind: low === reqNewPort0 ? "port0" : "control",
      port: low === reqNewPort0 ? 0 : type >>> 8,
      path: path.value,
      description: printable(nul < 0 ? rest : rest.subarray(0, nul)),
    },
  };
}

/** Writes a sockaddr_un (family and NUL-padded path) at `at`; throws on a path that does not fit (our own input). */
export function encodeSockaddrUn(path: string, out: Buffer = Buffer.alloc(sockaddrUnLength), at = 0): Buffer {
  const p = Buffer.from(path, "utf8");
  if (p.length === 0 || p.length >= sunPathLength || p.includes(0))
    throw new RangeError(`a unix socket path must be 1..${sunPathLength - 1} bytes without NUL: ${path}`);
  out.fill(0, at, at + sockaddrUnLength);
  writeU16(out, afUnix, at);
  p.copy(out, at + 2);
  return out;
}

/** A pathname sockaddr_un (at least 110 bytes are read); the path must be NUL-terminated UTF-8. */
export function decodeSockaddrUn(b: Buffer): VdeResult<string> {
  if (b.length < sockaddrUnLength) return { ok: false, reason: "address-too-short" };
  if (readU16(b, 0) !== afUnix) return { ok: false, reason: "address-not-unix" };
  const raw = b.subarray(2, 2 + sunPathLength);
  const nul = raw.indexOf(0);
  if (nul === 0) return { ok: false, reason: "address-abstract" };
  if (nul < 0) return { ok: false, reason: "address-unterminated" };
  const bytes = raw.subarray(0, nul);
  const path = bytes.toString("utf8");
  if (!Buffer.from(path, "utf8").equals(bytes)) return { ok: false, reason: "address-not-utf8" };
  return { ok: true, value: path };
}

/** What a log line may show of a peer's text: printable ASCII, the rest as "?". */
function printable(b: Buffer): string {
  let s = "";
  for (const c of b) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : "?";
  return s;
}
