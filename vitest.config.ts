import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 600_000,
    // e2e files boot QEMU guests; running two at once on 2 cores only slows both.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
