import net from "node:net";
import { describe, expect, it } from "vitest";
import { privateLoopbackPair } from "../../../src/proxy/smbd-host.js";

const refused = (port: number) =>
  new Promise<string>((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
  });

describe("privateLoopbackPair", () => {
  it("connects our end to theirs both ways, and leaves no listener behind", async () => {
    const { ours, theirs } = await privateLoopbackPair();
    try {
      expect(theirs.remotePort).toBe(ours.localPort);
      expect(theirs.localPort).toBe(ours.remotePort);
      // nothing listens on the pair's port once it is made
      expect(await refused(ours.remotePort as number)).toBe("ECONNREFUSED");
      const got = new Promise<string>((r) => ours.once("data", (d) => r(d.toString())));
      theirs.resume();
      theirs.write("from smbd");
      expect(await got).toBe("from smbd");
      const back = new Promise<string>((r) => theirs.once("data", (d) => r(d.toString())));
      ours.write("from the guest");
      expect(await back).toBe("from the guest");
    } finally {
      ours.destroy();
      theirs.destroy();
    }
  });
});
