/**
 * How Ethernet frames ride in WebSocket messages, both ways. Pure: no sockets here
 * (websocket-port.ts carries the messages).
 *
 * Theory of operation
 * - "raw": one Ethernet frame per binary message, nothing else. This is what v86's
 *   `network_relay_url` (and `net_device.relay_url`), JSLinux's `net_url` and jor1k's
 *   relay (websockproxy) speak. A binary message shorter than an Ethernet header is
 *   dropped ("frame-too-short"), one longer than `maxFrameLength` ("frame-too-long");
 *   the connection goes on, since every message stands alone.
 * - "qemu": QEMU's stream framing (a 4-byte big-endian length before each frame, see
 *   length-prefixed-frames.ts) carried in the binary message stream, as
 *   container2wasm's `net=delegate=ws://` does. Message boundaries mean nothing: a
 *   frame may span messages and a message may hold many frames. An impossible length
 *   cannot be resynchronised: the decoder fails for good ("bad-length") and the caller
 *   closes the connection. Encoding puts every frame of a batch into one message.
 * - Text messages carry no frames in either framing. Relays and clients send some
 *   (jor1k pings with "ping:..."); they are counted ("text-message") and ignored, and
 *   they never disturb the qemu byte stream.
 * - Nothing here throws on peer input: every message gives frames and drop counts.
 */
import {
  encodeFrames,
  LengthPrefixedFrames,
  minFrameLength,
  qemuMaxFrameLength,
} from "./length-prefixed-frames.js";

export type WebsocketFraming = "raw" | "qemu";

export const websocketFramings: readonly WebsocketFraming[] = ["raw", "qemu"];

export interface DecodedMessage {
  frames: Buffer[];
  /** frames or messages dropped because of this message, by reason */
  drops: Partial<Record<WebsocketDropReason, number>>;
  /** set once the stream is unusable ("bad-length"): close the connection */
  error?: string;
}

export type WebsocketDropReason = "text-message" | "frame-too-short" | "frame-too-long" | "bad-length";

export interface WebsocketDecoderOptions {
  /** the largest frame taken (default QEMU's NET_BUFSIZE, 69632 bytes) */
  maxFrameLength?: number;
}

/** Messages from one connection → frames; one decoder per connection. */
export class WebsocketFrameDecoder {
  private readonly maxFrameLength: number;
  private readonly stream: LengthPrefixedFrames | undefined;
  private failure: string | undefined;

  constructor(
    readonly framing: WebsocketFraming,
    options: WebsocketDecoderOptions = {},
  ) {
    this.maxFrameLength = options.maxFrameLength ?? qemuMaxFrameLength;
    if (framing === "qemu") this.stream = new LengthPrefixedFrames({ maxLength: this.maxFrameLength });
  }

  /** true when the qemu stream holds part of a frame */
  get midFrame(): boolean {
    return this.stream?.midFrame ?? false;
  }

  push(data: Buffer, isBinary: boolean): DecodedMessage {
    if (this.failure) return { frames: [], drops: {}, error: this.failure };
    if (!isBinary) return { frames: [], drops: { "text-message": 1 } };
    if (!this.stream) {
      if (data.length < minFrameLength) return { frames: [], drops: { "frame-too-short": 1 } };
      if (data.length > this.maxFrameLength) return { frames: [], drops: { "frame-too-long": 1 } };
      return { frames: [data], drops: {} };
    }
    const r = this.stream.push(data);
    const drops: DecodedMessage["drops"] = {};
    if (r.tooShort > 0) drops["frame-too-short"] = r.tooShort;
    if (r.error !== undefined) {
      this.failure = r.error;
      drops["bad-length"] = 1;
      return { frames: r.frames, drops, error: r.error };
    }
    return { frames: r.frames, drops };
  }
}

/**
 * The messages that carry `frames`: raw, one message per frame (the frames
 * themselves, uncopied); qemu, one message holding them all with their lengths.
 */
export function encodeWebsocketMessages(framing: WebsocketFraming, frames: readonly Buffer[]): Buffer[] {
  if (frames.length === 0) return [];
  return framing === "raw" ? [...frames] : [encodeFrames(frames)];
}
