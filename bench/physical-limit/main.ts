// npm run bench: the local farm against the physical limit of this machine, the same pipelines in one process
// (GitHub issue 17). Writes out/bench/bench.{json,md} and the plots, and prints the table. See README.md.
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UnclipClient } from "@unclip/cli";
import { connectFarm, ObjectStore, renderKey } from "@unclip/core";
import { startFarmStack } from "@unclip/devstack";
import { loadBenchConfig, type BenchConfig } from "./bench-config.js";
import { breakdownRows, jobSegments, type Estimates } from "./breakdown.js";
import { FarmTap } from "./farm-tap.js";
import { generateRequest, runJob, saturate, warmFarm, type JobRun } from "./farm-run.js";
import {
  batchGainFigure,
  hopFigure,
  hopRows,
  hopTaskBytes,
  overheadFigure,
  saturationFigure,
  type Figure,
  type SaturationRound,
} from "./figures.js";
import { InProcess, type ImageTimings, type OutputSize, type PipelineRun } from "./inprocess.js";
import { hopSamples, jobTimeline } from "./job-timeline.js";
import { checkMachine, loadAverage, MachineMonitor } from "./machine-guard.js";
import { plotBreakdown, plotHops, plotThroughput } from "./plot.js";
import { figureTable, markdown, type BenchResult } from "./report.js";
import { percentiles, quantile } from "./stats.js";
import { cpuSeconds, cpuUsedBetween } from "./process-cpu.js";
import { measureFloor } from "./transport-floor.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

let cfg: BenchConfig;
try {
  cfg = loadBenchConfig(process.env, ROOT);
} catch (err) {
  console.error(`bench: ${(err as Error).message}`);
  process.exit(2);
}

const guard = await checkMachine(cfg.busyCores, cfg.busyLoad);
if (guard.busy && !cfg.force) {
  console.error(
    `bench: refusing to start: the machine is busy (${guard.reasons.join("; ")}).\n` +
      "Figures measured now would not be this machine's limit. Wait until it is quiet, or set BENCH_FORCE=1 to run " +
      "anyway: every figure is then flagged busy: true.",
  );
  process.exit(2);
}

const startedAt = new Date().toISOString();
const t0 = performance.now();
const log = (msg: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}`);
if (guard.busy) log(`BENCH_FORCE=1: running on a busy machine (${guard.reasons.join("; ")}); every figure is flagged busy`);
const monitor = new MachineMonitor(cfg.busyCores);
// The batcher's wait for a batch to fill, as the workers read it (they inherit this environment).
const maxWaitMs = Number(process.env.UNCLIP_MAX_WAIT_MS || 20);
// What of the environment reaches the farm's services, credentials left out.
const farmEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k.startsWith("UNCLIP_") && !/PASSWORD|SECRET|TOKEN|CREDS/.test(k)),
) as Record<string, string>;

monitor.phase("start");
log(`starting the farm (bundle ${path.relative(ROOT, cfg.bundle)}, upscaler ${cfg.upscaler}) and loading the same models in process…`);
const farm = await startFarmStack({ bundle: cfg.bundle, upscalerBundle: cfg.upscaler, logDir: path.join(cfg.outDir, "bench-logs"), log });
const client = new UnclipClient(farm.grpcAddress);
const conn = await connectFarm(farm.env.UNCLIP_NATS_URL!, "bench");
const store = new ObjectStore({
  endpoint: farm.s3.endpoint,
  publicEndpoint: farm.s3.endpoint,
  accessKey: farm.s3.accessKey,
  secretKey: farm.s3.secretKey,
  bucket: "unclip",
  region: "us-east-1",
  timeoutMs: 10_000,
});
const tap = new FarmTap(conn);
let local: InProcess | undefined;
let result: BenchResult;
try {
  local = await InProcess.load(cfg);
  const inProcess = local;

  monitor.phase("warm-up");
  log("warming up both sides…");
  await warmFarm(client, cfg);
  await inProcess.warmUp();
  tap.clear();

  monitor.phase("idle 64");
  log(`${cfg.idleJobs} one-image 64 px jobs on the idle farm, each followed by the same work in process…`);
  const idleRuns: JobRun[] = [];
  const idleLocal: number[] = [];
  for (let i = 0; i < cfg.idleJobs; i++) {
    idleRuns.push(await runJob(client, generateRequest(cfg, 64, i)));
    idleLocal.push((await inProcess.timedImage(64, BigInt(i + 1))).totalMs);
  }

  monitor.phase("hops 256");
  log(`${cfg.hopJobs} one-image 256 px jobs for the hop timings…`);
  const hopRuns: JobRun[] = [];
  for (let i = 0; i < cfg.hopJobs; i++) hopRuns.push(await runJob(client, generateRequest(cfg, 256, i)));

  monitor.phase("breakdown 1024");
  log(`${cfg.breakdownJobs} one-image 1024 px jobs for the breakdown, each followed by the same work in process…`);
  const breakdownRuns: JobRun[] = [];
  const breakdownLocal: ImageTimings[] = [];
  for (let i = 0; i < cfg.breakdownJobs; i++) {
    breakdownRuns.push(await runJob(client, generateRequest(cfg, 1024, i)));
    breakdownLocal.push(await inProcess.timedImage(1024, BigInt(i + 1)));
  }
  const pngs = await Promise.all(
    [64, 256, 1024].map(async (size) => ({ size, bytes: new Uint8Array(await store.get(renderKey(breakdownRuns[0]!.jobId, 0, size))) })),
  );

  // Every event has arrived by now: the timelines can be read off the tap.
  const timeline = (r: JobRun) => jobTimeline(r, tap);
  const samples = [...idleRuns, ...hopRuns, ...breakdownRuns].flatMap((r) => hopSamples(timeline(r)));
  const breakdownTimelines = breakdownRuns.map(timeline);
  tap.close();

  monitor.phase("floor");
  const payloads = [...new Set(hopTaskBytes(samples).values())].filter((b) => Number.isFinite(b));
  log(`transport floor: JetStream cycles of ${payloads.join(", ")} bytes, S3 put/get of the 64/256/1024 px PNGs…`);
  const floor = await measureFloor(conn, store, payloads, pngs, cfg.floorSamples);

  monitor.phase("decoder batch gain");
  log(`decoder in process at batch 8 and batch 1, ${cfg.gainImages} images each, ${cfg.rounds} round(s)…`);
  const batch8: number[] = [];
  const batch1: number[] = [];
  for (let r = 0; r < cfg.rounds; r++) {
    if (r % 2 === 0) batch8.push(await inProcess.decoderRate(8, cfg.gainImages));
    batch1.push(await inProcess.decoderRate(1, cfg.gainImages));
    if (r % 2 === 1) batch8.push(await inProcess.decoderRate(8, cfg.gainImages));
  }

  const saturation = { 64: [] as SaturationRound[], 1024: [] as SaturationRound[] };
  for (const size of [64, 1024] as const) {
    monitor.phase(`saturation ${size}`);
    const images = size === 64 ? cfg.images64 : cfg.images1024;
    for (let r = 0; r < cfg.rounds; r++) {
      log(`saturation ${size} px, round ${r + 1}/${cfg.rounds}: ${images} images in process and on the farm…`);
      saturation[size].push(await saturationRound(inProcess, size, images, r));
    }
  }

  monitor.phase("stop");
  const phases = monitor.stop();
  const busy = (...names: string[]) => guard.busy || phases.some((p) => names.includes(p.phase) && p.busy);

  const opsP50 = (name: string) =>
    quantile(
      breakdownLocal.map((t) => t.ops[name] ?? Number.NaN),
      0.5,
    );
  const estimates: Estimates = {
    pngEncodeMs: { 64: opsP50("png_encode_64"), 256: opsP50("png_encode_256"), 1024: opsP50("png_encode_1024") },
    pngDecodeMs: { 64: opsP50("png_decode_64"), 256: opsP50("png_decode_256") },
    s3GetMs: Object.fromEntries(floor.s3.map((s) => [s.size, s.getMs.p50])),
  };
  const segments = breakdownTimelines.map((t) => jobSegments(t, estimates));
  const median = [...breakdownRuns.keys()].sort((a, b) => breakdownRuns[a]!.latencyMs - breakdownRuns[b]!.latencyMs)[
    Math.floor((breakdownRuns.length - 1) / 2)
  ]!;
  const hops = hopRows(samples, floor);
  const figures: Figure[] = [
    saturationFigure("farm_vs_inprocess_64", 64, saturation[64], busy("saturation 64")),
    saturationFigure("farm_vs_inprocess_1024", 1024, saturation[1024], busy("saturation 1024")),
    hopFigure(hops, busy("idle 64", "hops 256", "breakdown 1024", "floor")),
    overheadFigure(
      idleRuns.map((r) => r.latencyMs),
      idleLocal,
      busy("idle 64"),
    ),
    batchGainFigure(batch8, batch1, busy("decoder batch gain")),
  ];
  result = {
    schema: "unclip-bench/1",
    startedAt,
    seconds: (performance.now() - t0) / 1000,
    commit: commit(),
    config: { ...cfg, maxWaitMs, farmEnv },
    machine: { cores: guard.cores, cpu: cpus()[0]?.model ?? "unknown", guard, phases, windows: monitor.windows, loadAfter: loadAverage() },
    figures,
    saturation,
    hops,
    floor,
    breakdown1024: {
      jobs: breakdownRuns.length,
      rows: breakdownRows(segments),
      farmMs: percentiles(breakdownRuns.map((r) => r.latencyMs)),
      inProcessMs: percentiles(breakdownLocal.map((t) => t.totalMs)),
      medianJob: segments[median]!,
      inProcessOpsMs: Object.fromEntries(Object.keys(breakdownLocal[0]!.ops).map((k) => [k, opsP50(k)])),
    },
    idle64: { farmMs: idleRuns.map((r) => r.latencyMs), inProcessMs: idleLocal },
    decoderBatchGain: { batch8ImagesPerSecond: batch8, batch1ImagesPerSecond: batch1 },
  };
} finally {
  log("stopping the farm…");
  client.close();
  tap.close();
  await conn.nc.close().catch(() => undefined);
  await local?.release();
  await farm.stop();
}

await mkdir(cfg.outDir, { recursive: true });
const md = markdown(result);
await writeFile(
  path.join(cfg.outDir, "bench.json"),
  `${JSON.stringify(result, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v), 1)}\n`,
);
await writeFile(path.join(cfg.outDir, "bench.md"), md);
const b = result.breakdown1024;
await writeFile(path.join(cfg.outDir, "bench-throughput.png"), await plotThroughput(result.saturation));
await writeFile(
  path.join(cfg.outDir, "bench-breakdown-1024.png"),
  await plotBreakdown(b.medianJob, `One-image 1024 px job on the idle farm (median of ${b.jobs}): ${b.farmMs.p50.toFixed(0)} ms`),
);
await writeFile(path.join(cfg.outDir, "bench-hops.png"), await plotHops(result.hops));
console.log(`\n${md}`);
console.log(`${figureTable(result.figures)}\n`);
log(`wrote ${path.relative(ROOT, cfg.outDir)}/bench.{json,md} and bench-{throughput,breakdown-1024,hops}.png`);
process.exit(0);

/** One round: in process then farm on even rounds, farm then in process on odd ones, so drift cancels over two. */
async function saturationRound(inProcess: InProcess, size: OutputSize, images: number, round: number): Promise<SaturationRound> {
  const pids: Record<string, number> = { "bench (gRPC client, S3 server)": process.pid, "nats-server": farm.nats.pid! };
  for (const s of farm.services()) pids[s.name] = s.current.child.pid!;
  const farmSide = async () => {
    const before = cpuSeconds(pids);
    const run = await saturate(client, cfg, size, images);
    return { run, cpu: cpuUsedBetween(before, cpuSeconds(pids)) };
  };
  const localSide = async () => {
    const before = cpuSeconds({ self: process.pid }).self!;
    const run = await inProcess.pipeline(size, images);
    return { run, cpu: cpuSeconds({ self: process.pid }).self! - before };
  };
  const result = (
    order: SaturationRound["order"],
    local: { run: PipelineRun; cpu: number },
    remote: { run: PipelineRun; cpu: Record<string, number> },
  ) => ({
    order,
    inProcess: local.run,
    farm: remote.run,
    farmCpuSeconds: remote.cpu,
    inProcessCpuSeconds: local.cpu,
  });
  if (round % 2 === 0) {
    const local = await localSide();
    return result("in-process first", local, await farmSide());
  }
  const remote = await farmSide();
  return result("farm first", await localSide(), remote);
}

function commit(): string {
  try {
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], { cwd: ROOT, encoding: "utf8" }).trim() !== "";
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return "unknown";
  }
}
