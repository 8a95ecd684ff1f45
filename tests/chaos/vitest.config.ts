import { defineConfig } from "vitest/config";

// The short chaos run starts two farms in turn (nats-server, S3 server, seven service processes) and runs for minutes:
// under 3 on two idle cores, longer when other work shares them.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 420_000,
    hookTimeout: 240_000,
    fileParallelism: false,
    pool: "forks",
  },
});
