// Scale simulation of the worker pools on the real runtime: nats-server, the S3 server and StageWorker, with a
// synthetic model that sleeps for each stage's measured service time. See README.md.
// Usage: npm run scale-sim -w @unclip/bench   (SIM_WORKERS, SIM_POOLS, SIM_SECONDS, SIM_TIME_SCALE, SIM_KEDA_SECONDS, SIM_OUT)
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger, createRegistry, ObjectStore, WorkerMetrics } from "@unclip/core";
import { startS3Server } from "@unclip/devstack";
import { replayKeda, type KedaReplay } from "./keda-replay.js";
import { plotKedaReplay } from "./plot.js";
import { kedaSummary, saturationTable, verdicts } from "./report.js";
import { runSaturation, type SaturationResult } from "./saturation-run.js";
import { loadSimConfig, POOL_PROFILES } from "./sim-config.js";
import type { SimContext } from "./sim-context.js";
import { GENERATE_256 } from "./task-feeder.js";
import { makeSyntheticOutputs } from "./synthetic-handler.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const KEDA_POOL = POOL_PROFILES.decoder;

const config = loadSimConfig(process.env, path.resolve(HERE, "../../out/bench"));
const s3 = await startS3Server();
try {
  const s3Config = {
    endpoint: s3.endpoint,
    publicEndpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    bucket: "unclip",
    region: "us-east-1",
    timeoutMs: 10_000,
  };
  await new ObjectStore(s3Config).ensureBucket();
  const ctx: SimContext = {
    s3: s3Config,
    outputs: await makeSyntheticOutputs(GENERATE_256),
    log: createLogger("scale-sim", "error"),
    metrics: new WorkerMetrics(createRegistry("scale-sim")),
    timeScale: config.timeScale,
  };
  console.log(
    `service times × ${config.timeScale}; steady window ${config.seconds} s per run; pools ${config.pools.join(", ")}; workers ${config.workers.join(", ")}`,
  );
  const results: SaturationResult[] = [];
  for (const workers of config.workers) {
    for (const pool of config.pools) {
      const result = await runSaturation(ctx, POOL_PROFILES[pool], workers, config.seconds);
      console.log(
        `${pool} × ${workers}: ${result.tasksPerSecond.toFixed(1)} tasks/s = ${result.ratio.toFixed(3)} of ideal, longest idle while pending ${result.longestIdleWhilePendingMs.toFixed(0)} ms`,
      );
      results.push(result);
    }
  }
  let keda: KedaReplay | undefined;
  if (config.kedaSeconds > 0) {
    console.log(`KEDA replay of the ${KEDA_POOL.pool} pool for ${config.kedaSeconds} s…`);
    keda = await replayKeda(ctx, KEDA_POOL, config.kedaSeconds, config.kedaThreshold);
  }
  const table = saturationTable(results);
  const lines = [table, "", ...verdicts(results).map((v) => `- ${v}`), ...(keda ? ["", kedaSummary(keda)] : [])];
  console.log(`\n${lines.join("\n")}`);
  await mkdir(config.outDir, { recursive: true });
  await writeFile(path.join(config.outDir, "scale-sim.md"), `${lines.join("\n")}\n`);
  await writeFile(
    path.join(config.outDir, "scale-sim.json"),
    `${JSON.stringify({ config, profiles: POOL_PROFILES, saturation: results, keda }, null, 1)}\n`,
  );
  if (keda) {
    const { png } = await plotKedaReplay(keda);
    await writeFile(path.join(config.outDir, "keda-replay.png"), png);
    await writeFile(path.join(HERE, "keda-replay.png"), png);
  }
  console.log(`wrote ${path.join(config.outDir, "scale-sim.{json,md}")}${keda ? " and keda-replay.png" : ""}`);
} finally {
  await s3.stop();
}
// A worker whose stop() failed (the report lists them) leaves its timers behind, which would keep the process alive.
process.exit(0);
