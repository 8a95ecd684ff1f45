import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import { UnclipClient } from "@unclip/cli";
import { repoRoot, startFarmStack, type FarmStack } from "@unclip/devstack";
import { JobState } from "@unclip/protocol";
import { faultTable, judgeJob, violations, type FaultRow, type ImageHashes, type JobVerdict } from "./chaos-analysis.js";
import { FaultLog, type Injection } from "./fault-log.js";
import { runFaultSchedule, type FaultPlan } from "./fault-schedule.js";
import { runJob, type JobRun } from "./job-client.js";
import { jobInputs, jobSpecs, seededRandom, type JobInputs, type JobSpec } from "./job-specs.js";

/** The tiny random-weight bundle: real ONNX graphs under the farm's tensor contract, fast on CPU. */
export const TINY_BUNDLE = path.join(repoRoot, "models", "tiny-random");

export interface ChaosOptions {
  /** Jobs per phase (the same specs run fault-free, then under faults). */
  readonly jobs: number;
  /** Seed of the job mix and of the harness's random choices. */
  readonly seed: number;
  readonly workersPerPool: number;
  /** Jobs the client runs at once. */
  readonly maxInFlight: number;
  /** The chaos phase spreads its job submissions over this long, so that every planned fault meets running jobs. */
  readonly submitSpanMs: number;
  readonly plan: FaultPlan;
  /** UNCLIP_FAULT_POINTS of the workers and of the gateway during the chaos phase. */
  readonly workerFaultPoints: string;
  readonly gatewayFaultPoints: string;
  /** UNCLIP_ACK_WAIT_MS of both farms: how soon a dead worker's task is delivered again. */
  readonly ackWaitMs: number;
  /** Each phase ends by this long after it started, finished or not (jobs left then count as lost). */
  readonly phaseLimitMs: number;
  /** A stream without events this long is followed again. */
  readonly idleMs: number;
  /** Where service logs go (one folder per phase). */
  readonly logDir?: string;
  readonly log: (line: string) => void;
}

export interface ChaosReport {
  readonly options: Omit<ChaosOptions, "log">;
  readonly rows: FaultRow[];
  readonly violations: string[];
  readonly faults: Injection[];
  readonly verdicts: JobVerdict[];
  readonly baselineSeconds: number;
  readonly chaosSeconds: number;
}

async function sha256(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`GET ${url} → ${String(res.status)}`);
  return createHash("sha256")
    .update(new Uint8Array(await res.arrayBuffer()))
    .digest("hex");
}

/** sha256 of every final image of the jobs that succeeded, a few downloads at a time. */
async function imageHashes(runs: readonly JobRun[]): Promise<ImageHashes> {
  const out = new Map<number, Map<number, string>>();
  const images = runs.flatMap((r) =>
    r.final?.state === JobState.SUCCEEDED ? r.final.images.map((image) => ({ spec: r.spec.index, image })) : [],
  );
  for (let i = 0; i < images.length; i += 8) {
    await Promise.all(
      images.slice(i, i + 8).map(async ({ spec, image }) => {
        const hashes = out.get(spec) ?? new Map<number, string>();
        out.set(spec, hashes);
        hashes.set(image.index, await sha256(image.url));
      }),
    );
  }
  return out;
}

interface PhaseOptions {
  readonly name: string;
  readonly farm: FarmStack;
  readonly specs: readonly JobSpec[];
  readonly inputs: JobInputs;
  readonly opts: ChaosOptions;
  /** 0 submits as fast as the in-flight limit lets. */
  readonly spanMs: number;
  readonly onSubmit?: () => void;
}

/** Runs every spec through the farm's gateway with at most maxInFlight at once; ends by the phase limit. */
async function runPhase(p: PhaseOptions): Promise<JobRun[]> {
  const client = new UnclipClient(p.farm.grpcAddress);
  const started = Date.now();
  const deadline = started + p.opts.phaseLimitMs;
  const runs: Promise<JobRun>[] = [];
  let inFlight = 0;
  let freed: () => void = () => undefined;
  try {
    for (const spec of p.specs) {
      const due = started + (p.spanMs * spec.index) / p.specs.length;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      while (inFlight >= p.opts.maxInFlight) await new Promise<void>((resolve) => (freed = resolve));
      inFlight++;
      p.onSubmit?.();
      const requestId = `chaos-${String(p.opts.seed)}-${p.name}-${String(started)}-${String(spec.index)}`;
      runs.push(
        runJob(client, spec, p.inputs, { requestId, deadline, idleMs: p.opts.idleMs }).finally(() => {
          inFlight--;
          freed();
        }),
      );
    }
    return await Promise.all(runs);
  } finally {
    client.close();
  }
}

function startFarm(opts: ChaosOptions, phase: string, env: Record<string, string>, gatewayEnv: Record<string, string>) {
  const n = opts.workersPerPool;
  return startFarmStack({
    bundle: TINY_BUNDLE,
    upscalerBundle: TINY_BUNDLE,
    workers: { prior: n, decoder: n, upscale: n },
    // One ONNX thread per process: six workers share the machine's cores rather than fight over them.
    env: { UNCLIP_ACK_WAIT_MS: String(opts.ackWaitMs), UNCLIP_INTRA_OP_THREADS: "1", ...env },
    serviceEnv: { gateway: gatewayEnv },
    s3Proxy: true,
    // Restarts soon after each death: the suite kills often, and a long CrashLoopBackOff would only add waiting.
    restartPolicy: { initialDelayMs: 200, maxDelayMs: 2_000, resetAfterMs: 20_000 },
    logDir: opts.logDir ? path.join(opts.logDir, phase) : undefined,
    log: (line) => opts.log(`[${phase}] ${line}`),
  });
}

/**
 * The suite: the jobs on a fault-free farm (the reference images), then the same jobs on a fresh farm while the
 * plan's faults hit it; every job judged against the promises (none lost, no duplicates, same bytes, no needless
 * redelivery). Every farm is stopped before this returns or throws.
 */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const specs = jobSpecs(opts.jobs, opts.seed);
  const inputs = await jobInputs();
  // Service logs are appended to: start from none, so they hold this run only.
  if (opts.logDir) await rm(opts.logDir, { recursive: true, force: true });

  opts.log(`fault-free run: ${String(specs.length)} jobs, ${String(opts.workersPerPool)} workers per pool`);
  const baselineStart = Date.now();
  const clean = await startFarm(opts, "fault-free", {}, {});
  let baseline: ImageHashes;
  try {
    const runs = await runPhase({ name: "fault-free", farm: clean, specs, inputs, opts, spanMs: 0 });
    const failed = runs.filter((r) => r.final?.state !== JobState.SUCCEEDED);
    if (failed.length > 0) {
      const first = failed[0]!;
      throw new Error(
        `${String(failed.length)} job(s) did not succeed on the fault-free farm, e.g. job ${String(first.spec.index)}: ` +
          `${first.final?.error || first.streams.at(-1)?.error || "no terminal state"}`,
      );
    }
    baseline = await imageHashes(runs);
  } finally {
    await clean.stop();
  }
  const baselineSeconds = (Date.now() - baselineStart) / 1000;
  opts.log(`fault-free run done in ${baselineSeconds.toFixed(0)} s`);

  opts.log(`chaos run: the same ${String(specs.length)} jobs under faults`);
  const chaosStart = Date.now();
  const farm = await startFarm(
    opts,
    "chaos",
    opts.workerFaultPoints ? { UNCLIP_FAULT_POINTS: opts.workerFaultPoints } : {},
    opts.gatewayFaultPoints ? { UNCLIP_FAULT_POINTS: opts.gatewayFaultPoints } : {},
  );
  const faults = new FaultLog();
  let runs: JobRun[];
  let hashes: ImageHashes;
  try {
    faults.watch(farm);
    let submitted: (() => void)[] = [];
    const stop = new AbortController();
    const schedule = runFaultSchedule(
      farm,
      faults,
      opts.plan,
      {
        nextSubmission: () => new Promise<void>((resolve) => submitted.push(resolve)),
        // A stream apart from the job mix's (same seed, scrambled), for the harness's own choices: which worker dies, when.
        random: seededRandom((opts.seed * 2654435761) >>> 0),
        log: opts.log,
      },
      stop.signal,
    );
    try {
      runs = await runPhase({
        name: "chaos",
        farm,
        specs,
        inputs,
        opts,
        spanMs: opts.submitSpanMs,
        onSubmit: () => {
          for (const resolve of submitted) resolve();
          submitted = [];
        },
      });
    } finally {
      stop.abort();
      await schedule;
    }
    hashes = await imageHashes(runs);
  } finally {
    await farm.stop();
  }
  const chaosSeconds = (Date.now() - chaosStart) / 1000;

  const injections = faults.all();
  const verdicts = runs.map((run) => judgeJob(run, injections, baseline, hashes));
  const { log: _log, ...options } = opts;
  return {
    options,
    rows: faultTable(runs, verdicts, injections),
    violations: violations(verdicts, injections),
    faults: injections,
    verdicts,
    baselineSeconds,
    chaosSeconds,
  };
}
