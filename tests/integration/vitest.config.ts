import { defineConfig } from "vitest/config";

// Each file starts its own farm (nats-server, S3 server, four service processes): run files one at a time.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 240_000,
    fileParallelism: false,
    pool: "forks",
  },
});
