import { defineConfig } from "vitest/config";

// Each file starts its own farm (nats-server, S3 server, four service processes). Two files run at a time: most of a
// file's time is spent waiting (outages, ack waits, restarts, a reconciler's pass), not computing, so on two cores this
// takes about 5.5 minutes instead of 8, and every test is written to hold under that contention (timings are bounds,
// not exact figures).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 240_000,
    fileParallelism: true,
    maxWorkers: 2,
    pool: "forks",
  },
});
