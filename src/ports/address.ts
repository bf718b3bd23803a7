/** Transport addresses as the ports see them, and how they are written in logs. */
import { getSystemErrorMap } from "node:util";

export interface InetEndpoint {
  type: "inet";
  /** "" means every address (QEMU's `listen=:port`) */
  host: string;
  port: number;
}

export interface UnixEndpoint {
  type: "unix";
  path: string;
}

export type StreamAddress = InetEndpoint | UnixEndpoint;

/** "127.0.0.1:8010", "0.0.0.0:8010" for the any-address, or the unix path */
export function formatAddress(a: StreamAddress): string {
  return a.type === "unix" ? a.path : `${a.host === "" ? "0.0.0.0" : a.host}:${a.port}`;
}

/** The host to bind for an inet endpoint: IPv4 any-address when none was given, like QEMU. */
export function bindHost(host: string): string {
  return host === "" ? "0.0.0.0" : host;
}

/** "EADDRINUSE (address already in use)" from a Node error, for messages meant for people */
export function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e === "object" && typeof e.code === "string") {
    const text = typeof e.errno === "number" ? getSystemErrorMap().get(e.errno)?.[1] : undefined;
    return text ? `${e.code} (${text})` : e.code;
  }
  return err instanceof Error ? err.message : String(err);
}
