import type { JsMsg } from "@nats-io/jetstream";
import type { Subscription } from "@nats-io/transport-node";
import {
  create,
  fromBinary,
  stageName,
  stageOutputSize,
  stagePool,
  toBinary,
  JobKind,
  Lane,
  StageStartedSchema,
  StageTaskSchema,
  StageTimingSchema,
  StepProgressSchema,
  type Job,
  type Pool,
  type Stage,
  type StageTask,
  type StageTiming,
  type Tensor,
} from "@unclip/protocol";
import { FarmError, GrpcStatus, toFarmError } from "./errors.js";
import { publishEvent } from "./events.js";
import { failJob, imageRef, markRunning, recordImage, stageFinishedEvent } from "./job-progress.js";
import { isTerminal, JobStore } from "./job-store.js";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";
import { CANCEL_SUBJECT, ensurePoolConsumer, LANES, taskSubject, TASK_STREAM, type FarmConnection } from "./nats.js";
import { renderKey, type ObjectStore } from "./object-store.js";
import { TaskBatcher } from "./task-batcher.js";
import { TaskPuller } from "./task-puller.js";
import { WorkerReporter } from "./worker-reports.js";
import { watchDeadLetters } from "./dead-letters.js";

/** What a stage produced for one task: an embedding for the next stage, or an image (PNG) to store. */
export type StageOutput = { embedding: Tensor } | { png: Uint8Array };

export interface TaskContext {
  readonly task: StageTask;
  readonly stage: Stage;
  /** 1 on first delivery. */
  readonly attempt: number;
  /** Reports diffusion progress (step of total) to the job's watchers. */
  progress(step: number, total: number): void;
}

/** A stage's model code. The runtime owns pulling, batching, acks, heartbeats, storage, routing and shutdown. */
export interface StageHandler {
  readonly pool: Pool;
  /** name@version of the model bundle, for logs, metrics and job records. */
  readonly bundle: string;
  /** The execution provider the model really runs on ("cpu", "cuda"), for the info metric. */
  readonly executionProvider?: string;
  /** Diffusion steps the bundle runs for a task that asks for the default, by stage (for the gateway's rate estimates). */
  readonly defaultSteps?: Partial<Record<Stage, number>>;
  /** Tasks with equal keys can run as one model batch (same stage, steps, guidance, sampler, …). */
  batchKey(task: StageTask): string;
  /**
   * Runs one batch; returns one output or Error per task, in order. A FarmError that is not retryable fails the
   * job at once; other errors are retried on another delivery. `signal` aborts when the worker is forced to stop
   * or every task of the batch was cancelled.
   */
  run(batch: readonly TaskContext[], signal: AbortSignal): Promise<(StageOutput | Error)[]>;
}

/** Runtime options, all durations in milliseconds. */
export interface StageWorkerOptions {
  /** Most tasks run as one batch (default 4). */
  maxBatch: number;
  /**
   * Tasks held beyond the running batch (default: one batch). A worker holds at most maxBatch + prefetch tasks and
   * pulls only into free room, so the rest of its pool's queue stays available to other replicas.
   */
  prefetch: number;
  /** How long the first task of a batch waits for more to arrive (default 20). */
  maxWaitMs: number;
  /** JetStream redelivers a task not acked (or heartbeated) within this time (default 30000). */
  ackWaitMs: number;
  /** Deliveries before a task and its job are given up (default 5). */
  maxDeliver: number;
  /** Delay before a failed task is redelivered (default 1000). */
  retryDelayMs: number;
  /** On shutdown, how long in-flight work may finish before it is aborted and released (default 20000). */
  graceMs: number;
  workerName: string;
}

enum State {
  Running,
  Stopping,
  Draining,
  Stopped,
}

interface Held {
  task: StageTask;
  stage: Stage;
}

export class StageWorker {
  private state = State.Running;
  private readonly jobs: JobStore;
  private readonly batcher: TaskBatcher<Held>;
  private puller: TaskPuller | undefined;
  private reporter: WorkerReporter | undefined;
  private readonly subscriptions: Subscription[] = [];
  private readonly cancelled = new Set<string>();
  private readonly forceStop = new AbortController();
  private loop: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Tasks taken out of the batcher: running on the model or being handed on. */
  private readonly inFlight = new Set<JsMsg>();

  constructor(
    private readonly conn: FarmConnection,
    private readonly store: ObjectStore,
    private readonly handler: StageHandler,
    private readonly opts: StageWorkerOptions,
    private readonly log: Logger,
    private readonly metrics: WorkerMetrics,
  ) {
    this.jobs = new JobStore(conn.jobs);
    this.batcher = new TaskBatcher(opts.maxBatch, opts.maxWaitMs);
  }

  /** True while the worker takes tasks (after start, before stop). */
  get running(): boolean {
    return this.state === State.Running && this.puller?.healthy === true;
  }

  async start(): Promise<void> {
    const { pool } = this.handler;
    const ensureConsumers = () => Promise.all(LANES.map((lane) => ensurePoolConsumer(this.conn.jsm, pool, this.opts, lane)));
    const [interactiveName, batchName] = await ensureConsumers();
    this.metrics.bundleInfo.set({ pool, bundle: this.handler.bundle }, 1);
    if (this.handler.executionProvider) this.metrics.providerInfo.set({ pool, provider: this.handler.executionProvider }, 1);
    this.subscriptions.push(
      this.conn.nc.subscribe(CANCEL_SUBJECT, { callback: (_e, m) => this.noteCancelled(m.string()) }),
      watchDeadLetters(this.conn, this.log),
    );
    const lanes = {
      interactive: await this.conn.js.consumers.get(TASK_STREAM, interactiveName!),
      batch: await this.conn.js.consumers.get(TASK_STREAM, batchName!),
    };
    // A SIGTERM while starting: stop() already ran, so take no tasks at all.
    if (this.state !== State.Running) return;
    const capacity = this.opts.maxBatch + this.opts.prefetch;
    this.puller = new TaskPuller(lanes, (msg) => this.take(msg), this.log, {
      capacity,
      recover: async () => void (await ensureConsumers()),
    });
    this.reporter = new WorkerReporter(this.conn.nc, {
      pool,
      worker: this.opts.workerName,
      capacity,
      defaultSteps: this.handler.defaultSteps ?? {},
    });
    this.heartbeat = setInterval(() => this.beat(), Math.max(200, this.opts.ackWaitMs / 3));
    this.puller.start();
    this.reporter.start();
    this.loop = this.run();
    this.log.info({ pool, consumers: [interactiveName, batchName], bundle: this.handler.bundle, ...this.opts }, "worker started");
  }

  /**
   * RUNNING → STOPPING (no new pull requests; tasks from the ones still open are taken) → DRAINING (run every task
   * held, at most batch + prefetch, then stop; after graceMs abort and release what is left) → STOPPED.
   * Held tasks are run rather than released: a release counts as a delivery, so a pool that scales down and up
   * again and again would drive prefetched tasks to max-deliver and fail their jobs.
   */
  async stop(): Promise<void> {
    if (this.state !== State.Running) return this.loop;
    this.state = State.Stopping;
    this.reporter?.stop();
    const grace = setTimeout(() => {
      this.log.warn({ graceMs: this.opts.graceMs }, "in-flight tasks did not finish in time: aborting and releasing them");
      this.forceStop.abort(new FarmError(GrpcStatus.UNAVAILABLE, "worker shutting down", true));
    }, this.opts.graceMs);
    await this.puller?.stop();
    // Nothing arrives any more: the loop runs what is held and ends.
    this.batcher.close();
    this.state = State.Draining;
    await this.loop;
    clearTimeout(grace);
    clearInterval(this.heartbeat);
    for (const sub of this.subscriptions) sub.unsubscribe();
    this.state = State.Stopped;
  }

  private noteCancelled(jobId: string): void {
    // Only recent cancellations matter (tasks still in flight); keep the set bounded.
    if (this.cancelled.size >= 10_000) this.cancelled.delete(this.cancelled.values().next().value!);
    this.cancelled.add(jobId);
  }

  /** Every delivered task comes here; one that does not go to the batcher leaves the prefetch window at once. */
  private async take(msg: JsMsg): Promise<void> {
    let batched = false;
    try {
      // While stopping, tasks from pull requests still open are taken like any other: they fit the window.
      if (this.state === State.Running || this.state === State.Stopping) batched = await this.admit(msg);
      else msg.nak();
    } catch (err) {
      this.log.error({ err, seq: msg.seq }, "could not take a task: releasing it for redelivery");
      msg.nak(this.opts.retryDelayMs);
    }
    if (!batched) this.puller!.window.release(1);
  }

  /** Decodes and checks a task and hands it to the batcher; false when it was terminated instead. */
  private async admit(msg: JsMsg): Promise<boolean> {
    let task: StageTask;
    try {
      task = fromBinary(StageTaskSchema, msg.data);
    } catch (err) {
      this.log.error({ err, seq: msg.seq }, "undecodable task: dropping it");
      msg.term("undecodable StageTask");
      return false;
    }
    const stage = task.route[0];
    if (stage === undefined || stagePool(stage) !== this.handler.pool || !task.params) {
      await failJob(this.jobs, this.conn.nc, task.jobId, `internal error: a malformed task reached the ${this.handler.pool} pool`);
      msg.term("malformed task");
      return false;
    }
    const key = `${stage}|${this.handler.batchKey(task)}`;
    this.metrics.inFlight.inc({ pool: this.handler.pool });
    this.batcher.push(msg, { task, stage }, key);
    return true;
  }

  /**
   * Runs batches on the model one after another and hands each batch's outputs on (store, publish, ack) while the
   * next one runs, so the model does not wait for uploads. One hand-off at a time: the next waits for it, which keeps
   * hand-offs in order; outputs waiting for theirs stay within the worker's window (batch + prefetch tasks), since
   * tasks count as held until their hand-off ends.
   */
  private async run(): Promise<void> {
    let handingOff: Promise<void> = Promise.resolve();
    for (;;) {
      const batch = await this.batcher.next();
      if (!batch) break;
      for (const { msg } of batch) this.inFlight.add(msg);
      let handOff: Promise<void>;
      try {
        ({ handOff } = await this.runBatch(batch, handingOff));
      } catch (err) {
        this.log.error({ err }, "batch failed unexpectedly: releasing its tasks");
        for (const { msg } of batch) msg.nak(this.opts.retryDelayMs);
        handOff = handingOff;
      }
      handingOff = handOff
        .catch((err: unknown) => {
          this.log.error({ err }, "handing a batch on failed unexpectedly: releasing its tasks");
          for (const { msg } of batch) msg.nak(this.opts.retryDelayMs);
        })
        .finally(() => {
          for (const { msg } of batch) this.inFlight.delete(msg);
          this.metrics.inFlight.dec({ pool: this.handler.pool }, batch.length);
          this.puller!.window.release(batch.length);
        });
    }
    await handingOff;
  }

  private beat(): void {
    for (const msg of [...this.inFlight, ...this.batcher.messages()]) msg.working();
  }

  /**
   * Runs the batch on the model; resolves, once it ran, with its hand-off, which starts after `previous` ends
   * (wrapped in an object: a promise returned as such would be awaited along).
   */
  private async runBatch(batch: { msg: JsMsg; item: Held }[], previous: Promise<void>): Promise<{ handOff: Promise<void> }> {
    const { pool } = this.handler;
    const live: { msg: JsMsg; item: Held }[] = [];
    for (const entry of batch) {
      const job = await this.jobs.get(entry.item.task.jobId);
      if (!job || isTerminal(job)) {
        this.metrics.tasks.inc({ pool, stage: stageName(entry.item.stage), outcome: "cancelled" });
        entry.msg.term(job ? "job already ended" : "job not found");
        continue;
      }
      live.push(entry);
    }
    if (live.length === 0) return { handOff: previous };
    const stage = live[0]!.item.stage;
    const labels = { pool, stage: stageName(stage) };
    const started = Date.now();
    // The diffusion steps the handler reports through progress(); 0 for stages without a diffusion loop.
    let steps = 0;
    this.metrics.batchSize.observe(labels, live.length);
    const contexts: TaskContext[] = live.map(({ msg, item }) => {
      const { task } = item;
      const lane = task.lane === Lane.BATCH ? "batch" : "interactive";
      this.metrics.queueWaitSeconds.observe({ ...labels, lane }, Math.max(0, started - Number(task.enqueuedAtMs)) / 1000);
      publishEvent(this.conn.nc, task.jobId, {
        case: "stageStarted",
        value: create(StageStartedSchema, { stage, index: task.index, worker: this.opts.workerName, attempt: msg.info.deliveryCount }),
      });
      if (task.timings.length === 0) {
        markRunning(this.jobs, task.jobId).catch((err) => this.log.warn({ err, jobId: task.jobId }, "could not mark the job running"));
      }
      return {
        task,
        stage,
        attempt: msg.info.deliveryCount,
        progress: (step, total) => {
          steps = total;
          publishEvent(this.conn.nc, task.jobId, {
            case: "step",
            value: create(StepProgressSchema, { stage, index: task.index, step, total }),
          });
        },
      };
    });
    const { signal, dispose } = this.batchSignal(live.map((l) => l.item.task.jobId));
    let outputs: (StageOutput | Error)[];
    try {
      outputs = await this.handler.run(contexts, signal);
    } catch (err) {
      outputs = live.map(() => err as Error);
    } finally {
      dispose();
    }
    // The model's time is what bounds a worker's rate (hand-offs overlap the next batch): report that.
    const modelSeconds = (Date.now() - started) / 1000;
    // A batch that produced nothing (bad input, cancelled, aborted) says nothing about the model's rate.
    if (outputs.some((o) => !(o instanceof Error))) this.reporter?.batch(stage, live.length, modelSeconds, steps);
    for (let i = 0; i < live.length; i++)
      this.metrics.imageSeconds.observe({ ...labels, bundle: this.handler.bundle }, modelSeconds / live.length);
    const handOff = (async () => {
      await previous;
      for (let i = 0; i < live.length; i++) {
        const { msg, item } = live[i]!;
        await this.finish(msg, item, outputs[i] ?? new Error("stage returned no output"), started).catch((err) => {
          this.log.error({ err, jobId: item.task.jobId }, "could not hand the task on: it will be redelivered");
          this.metrics.tasks.inc({ ...labels, outcome: "retried" });
          msg.nak(this.opts.retryDelayMs);
        });
      }
      this.metrics.stageSeconds.observe({ ...labels, bundle: this.handler.bundle }, (Date.now() - started) / 1000);
    })();
    return { handOff };
  }

  /** Aborts when the worker is forced to stop, or when every job of the batch is cancelled. */
  private batchSignal(jobIds: string[]): { signal: AbortSignal; dispose: () => void } {
    const controller = new AbortController();
    const check = setInterval(() => {
      if (jobIds.every((id) => this.cancelled.has(id))) controller.abort(new FarmError(GrpcStatus.CANCELLED, "job cancelled"));
    }, 100);
    return { signal: AbortSignal.any([controller.signal, this.forceStop.signal]), dispose: () => clearInterval(check) };
  }

  private async finish(msg: JsMsg, item: Held, output: StageOutput | Error, started: number): Promise<void> {
    const { task, stage } = item;
    const labels = { pool: this.handler.pool, stage: stageName(stage) };
    if (output instanceof Error) return this.fail(msg, item, output);
    if (this.cancelled.has(task.jobId)) {
      this.metrics.tasks.inc({ ...labels, outcome: "cancelled" });
      msg.term("job cancelled");
      return;
    }
    const timing: StageTiming = create(StageTimingSchema, {
      stage,
      index: task.index,
      seconds: (Date.now() - started) / 1000,
      queueSeconds: Math.max(0, started - Number(task.enqueuedAtMs)) / 1000,
      worker: this.opts.workerName,
    });
    const next: StageTask = create(StageTaskSchema, {
      ...task,
      route: task.route.slice(1),
      timings: [...task.timings, timing],
      bundles: [...new Set([...task.bundles, `${stageName(stage)}=${this.handler.bundle}`])],
      imageEmbedding: undefined,
      imageKey: "",
      enqueuedAtMs: BigInt(Date.now()),
    });
    let produced;
    if ("png" in output) {
      const size = stageOutputSize(stage);
      const key = renderKey(task.jobId, task.index, size);
      await this.store.put(key, output.png);
      produced = imageRef(task.index, size, key, task.seed);
      next.imageKey = key;
      if (next.route.length > 0) publishEvent(this.conn.nc, task.jobId, { case: "preview", value: produced });
    } else {
      next.imageEmbedding = output.embedding;
    }
    publishEvent(this.conn.nc, task.jobId, stageFinishedEvent(timing, produced));
    const following = next.route[0];
    if (following !== undefined) {
      await this.conn.js.publish(taskSubject(stagePool(following), task.lane), toBinary(StageTaskSchema, next), {
        msgID: `${task.jobId}.${task.index}.${stageName(following)}`,
      });
    } else if (produced) {
      const job = await recordImage(this.jobs, this.conn.nc, next, produced, next.timings);
      if (job && job.images.length >= job.numImages) {
        this.metrics.jobSeconds.observe(jobLabels(job, task, "succeeded"), (Date.now() - Number(job.createdAtMs)) / 1000);
      }
    } else {
      throw new FarmError(GrpcStatus.INTERNAL, `stage ${stageName(stage)} produced no image but ends the route`);
    }
    await msg.ackAck();
    this.metrics.tasks.inc({ ...labels, outcome: "ok" });
  }

  private async fail(msg: JsMsg, item: Held, err: Error): Promise<void> {
    const { task, stage } = item;
    const labels = { pool: this.handler.pool, stage: stageName(stage) };
    const farmError = toFarmError(err);
    const attempts = msg.info.deliveryCount;
    if (this.forceStop.signal.aborted) {
      msg.nak();
      this.metrics.tasks.inc({ ...labels, outcome: "retried" });
      return;
    }
    if (farmError.code === GrpcStatus.CANCELLED || this.cancelled.has(task.jobId)) {
      msg.term("job cancelled");
      this.metrics.tasks.inc({ ...labels, outcome: "cancelled" });
      return;
    }
    if (!farmError.retryable || attempts >= this.opts.maxDeliver) {
      const reason = farmError.retryable
        ? `the ${stageName(stage)} stage failed ${attempts} times; last error: ${farmError.message}`
        : `the ${stageName(stage)} stage refused image ${task.index}: ${farmError.message}`;
      this.log.warn({ jobId: task.jobId, index: task.index, err }, reason);
      const job = await failJob(this.jobs, this.conn.nc, task.jobId, reason);
      if (job?.error === reason) {
        this.metrics.jobSeconds.observe(jobLabels(job, task, "failed"), (Date.now() - Number(job.createdAtMs)) / 1000);
      }
      msg.term(reason.slice(0, 200));
      this.metrics.tasks.inc({ ...labels, outcome: "failed" });
      return;
    }
    this.log.warn({ jobId: task.jobId, index: task.index, attempts, err }, "task failed: retrying");
    msg.nak(this.opts.retryDelayMs);
    this.metrics.tasks.inc({ ...labels, outcome: "retried" });
  }
}

function jobLabels(job: Job, task: StageTask, outcome: "succeeded" | "failed") {
  const kind = (JobKind[job.kind] ?? "unknown").toLowerCase();
  return { kind, outcome, size: String(job.size), lane: task.lane === Lane.BATCH ? "batch" : "interactive" };
}
