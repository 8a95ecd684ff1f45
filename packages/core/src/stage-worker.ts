import type { JsMsg } from "@nats-io/jetstream";
import {
  create,
  fromBinary,
  stageName,
  stagePool,
  Lane,
  StageStartedSchema,
  StageTaskSchema,
  StepProgressSchema,
  type StageTask,
} from "@unclip/protocol";
import { BatchProgress } from "./batch-progress.js";
import { watchDeadLetters, type DeadLetterWatch } from "./dead-letters.js";
import { FarmError, GrpcStatus } from "./errors.js";
import { publishEvent } from "./events.js";
import { backoffDelay } from "./failure-policy.js";
import { JobCancellations } from "./job-cancellations.js";
import { failJob, markRunning } from "./job-progress.js";
import { isTerminal, JobStore } from "./job-store.js";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";
import { ensurePoolConsumer, LANES, TASK_STREAM, type FarmConnection } from "./nats.js";
import type { ObjectStore } from "./object-store.js";
import type { HeldTask, StageHandler, StageOutput, TaskContext } from "./stage-handler.js";
import { TaskBatcher } from "./task-batcher.js";
import { TaskHandOff } from "./task-hand-off.js";
import { TaskPuller } from "./task-puller.js";
import { WorkerReporter } from "./worker-reports.js";

export type { StageHandler, StageOutput, TaskContext } from "./stage-handler.js";

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
  /**
   * Least time between two step events of a task (default 100); a task's last step is always announced. Each event
   * crosses NATS, the gateway and the client's gRPC stream while the model works: with one per diffusion step, a
   * one-image 64 px job took about 60 ms longer on the 2-core bench machine (bench/physical-limit/README.md).
   */
  stepEventMs: number;
  /** JetStream redelivers a task not acked (or heartbeated) within this time (default 30000). */
  ackWaitMs: number;
  /** Deliveries before a task and its job are given up (default 8). */
  maxDeliver: number;
  /**
   * Delay before a failed task is delivered again, by the delivery that failed; the last entry repeats (default
   * 1000, 2000, 5000, 10000, 30000: with 8 deliveries a task is retried for 108 s).
   */
  retryBackoffMs: readonly number[];
  /**
   * A batch on the model that reports no diffusion step for this long (a stage without steps: that runs this long)
   * is stuck: it is aborted, its tasks get no more heartbeats and are released, and /healthz fails (default 120000).
   */
  stallMs: number;
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

type Entry = { msg: JsMsg; item: HeldTask };

/**
 * The loop and state machine of a stage worker: takes tasks from the puller, batches them, runs each batch on the
 * model under a BatchProgress watch, and hands the outputs on (TaskHandOff) while the next batch runs. Heartbeats go
 * only to tasks that are moving: queued behind a model that progresses, on a model that progresses, or being handed
 * on (each hand-off call has a deadline).
 */
export class StageWorker {
  private state = State.Running;
  private readonly jobs: JobStore;
  private readonly batcher: TaskBatcher<HeldTask>;
  private readonly cancellations = new JobCancellations();
  private readonly handOff: TaskHandOff;
  private puller: TaskPuller | undefined;
  private reporter: WorkerReporter | undefined;
  private deadLetters: DeadLetterWatch | undefined;
  private readonly forceStop = new AbortController();
  private loop: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Batches on the model, with their progress watch. */
  private readonly onModel = new Map<BatchProgress, JsMsg[]>();
  /** Tasks whose batch left the model and that wait for or go through their hand-off. */
  private readonly handingOn = new Set<JsMsg>();
  /** A stalled batch whose model call has not returned yet: the worker cannot run anything. */
  private stuck = false;

  constructor(
    private readonly conn: FarmConnection,
    store: ObjectStore,
    private readonly handler: StageHandler,
    private readonly opts: StageWorkerOptions,
    private readonly log: Logger,
    private readonly metrics: WorkerMetrics,
  ) {
    this.jobs = new JobStore(conn.jobs);
    this.batcher = new TaskBatcher(opts.maxBatch, opts.maxWaitMs);
    this.handOff = new TaskHandOff({
      conn,
      store,
      jobs: this.jobs,
      handler,
      workerName: opts.workerName,
      failure: { maxDeliver: opts.maxDeliver, backoffMs: opts.retryBackoffMs },
      cancellations: this.cancellations,
      metrics,
      log,
      forcedToStop: () => this.forceStop.signal.aborted,
    });
  }

  /** True while the worker takes tasks (after start, before stop) and its model is not stuck. */
  get running(): boolean {
    return this.state === State.Running && this.puller?.healthy === true && !this.stuck;
  }

  async start(): Promise<void> {
    const { pool } = this.handler;
    const ensureConsumers = () => Promise.all(LANES.map((lane) => ensurePoolConsumer(this.conn.jsm, pool, this.opts, lane)));
    const [interactiveName, batchName] = await ensureConsumers();
    this.metrics.bundleInfo.set({ pool, bundle: this.handler.bundle }, 1);
    if (this.handler.executionProvider) this.metrics.providerInfo.set({ pool, provider: this.handler.executionProvider }, 1);
    this.cancellations.start(this.conn.nc);
    this.deadLetters = watchDeadLetters(this.conn, this.log);
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
      this.forceStop.abort(FarmError.unavailable("worker shutting down"));
    }, this.opts.graceMs);
    await this.puller?.stop();
    // Nothing arrives any more: the loop runs what is held and ends.
    this.batcher.close();
    this.state = State.Draining;
    await this.loop;
    clearTimeout(grace);
    clearInterval(this.heartbeat);
    this.cancellations.stop();
    await this.deadLetters?.stop();
    this.state = State.Stopped;
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
      this.release([msg]);
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
      let handOff: Promise<void> = handingOff;
      let modelFree: Promise<unknown> = Promise.resolve();
      try {
        ({ handOff, modelFree } = await this.runBatch(batch, handingOff));
      } catch (err) {
        this.log.error({ err }, "batch failed unexpectedly: releasing its tasks");
        this.release(batch.map((e) => e.msg));
      }
      handingOff = handOff
        .catch((err: unknown) => {
          this.log.error({ err }, "handing a batch on failed unexpectedly: releasing its tasks");
          this.release(batch.map((e) => e.msg));
        })
        .finally(async () => {
          for (const { msg } of batch) this.handingOn.delete(msg);
          this.metrics.inFlight.dec({ pool: this.handler.pool }, batch.length);
          // A stuck model pulls nothing new: tasks taken now would only wait out their ack wait behind it.
          await modelFree;
          this.puller!.window.release(batch.length);
        });
      // A stalled batch's tasks are handed on (released) at once, but the model is only free once its call returns.
      await modelFree;
    }
    await handingOff;
  }

  /** Releases tasks for redelivery after the first backoff delay (a failure that is not theirs to count against). */
  private release(msgs: JsMsg[]): void {
    for (const msg of msgs) {
      try {
        msg.nak(backoffDelay(1, this.opts.retryBackoffMs));
      } catch (err) {
        this.log.warn({ err, seq: msg.seq }, "could not release a task: its ack wait will");
      }
    }
  }

  /**
   * Heartbeats: a task keeps its delivery only while it moves. A batch on the model that stopped progressing gets
   * none (so JetStream redelivers its tasks elsewhere), and neither do the tasks queued behind a stuck model.
   */
  private beat(): void {
    const moving: JsMsg[] = [...this.handingOn];
    for (const [progress, msgs] of this.onModel) if (progress.alive) moving.push(...msgs);
    if (!this.stuck) moving.push(...this.batcher.messages());
    for (const msg of moving) {
      try {
        msg.working();
      } catch (err) {
        // The connection is closed; the tasks will be redelivered after their ack wait.
        this.log.warn({ err }, "could not heartbeat tasks");
        return;
      }
    }
  }

  /**
   * Runs the batch on the model; resolves, once it ran (or stalled), with its hand-off, which starts after `previous`
   * ends, and with the end of the model call (wrapped in an object: a promise returned as such would be awaited along).
   */
  private async runBatch(batch: Entry[], previous: Promise<void>): Promise<{ handOff: Promise<void>; modelFree: Promise<unknown> }> {
    const { pool } = this.handler;
    const live: Entry[] = [];
    for (const entry of batch) this.handingOn.add(entry.msg);
    // One KV read per task, all at once: read one after another they would keep a full batch off the model for as
    // many round trips.
    const jobs = await Promise.all(batch.map((entry) => this.jobs.get(entry.item.task.jobId)));
    batch.forEach((entry, i) => {
      const job = jobs[i];
      if (!job || isTerminal(job)) this.handOff.drop(entry.msg, entry.item, job ? "job already ended" : "job not found");
      else live.push(entry);
    });
    if (live.length === 0) return { handOff: previous, modelFree: Promise.resolve() };
    const stage = live[0]!.item.stage;
    const labels = { pool, stage: stageName(stage) };
    const started = Date.now();
    const msgs = live.map((l) => l.msg);
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
      let announcedAt = started;
      return {
        task,
        stage,
        attempt: msg.info.deliveryCount,
        progress: (step, total) => {
          steps = total;
          progress.progressed();
          const now = Date.now();
          if (step < total && now - announcedAt < this.opts.stepEventMs) return;
          announcedAt = now;
          publishEvent(this.conn.nc, task.jobId, {
            case: "step",
            value: create(StepProgressSchema, { stage, index: task.index, step, total }),
          });
        },
      };
    });
    // Watched from here on: nothing between this and the model call can throw.
    const progress = new BatchProgress(this.opts.stallMs);
    for (const msg of msgs) this.handingOn.delete(msg);
    this.onModel.set(progress, msgs);
    const cancel = this.cancellations.watch(live.map((l) => l.item.task.jobId));
    const signal = AbortSignal.any([cancel.signal, this.forceStop.signal, progress.signal]);
    // Through a promise chain, so a handler that throws before its first await is a failed batch like any other.
    const modelCall = Promise.resolve()
      .then(() => this.handler.run(contexts, signal))
      .catch((err: unknown) => live.map(() => err as Error));
    const modelFree = modelCall.finally(() => {
      progress.dispose();
      cancel.release();
      this.onModel.delete(progress);
      if (this.stuck) this.log.warn({ stage: stageName(stage) }, "the stalled model call returned: taking tasks again");
      this.stuck = false;
    });
    const outputs: (StageOutput | Error)[] = await Promise.race([
      modelCall,
      progress.stalled.then((err) => {
        this.stuck = true;
        this.log.error({ stage: stageName(stage), stallMs: this.opts.stallMs, tasks: live.length }, "batch stalled: releasing its tasks");
        return live.map(() => err);
      }),
    ]);
    this.onModel.delete(progress);
    for (const msg of msgs) this.handingOn.add(msg);
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
        await this.handOff.handOn(msg, item, outputs[i] ?? new Error("stage returned no output"), started);
      }
      this.metrics.stageSeconds.observe({ ...labels, bundle: this.handler.bundle }, (Date.now() - started) / 1000);
    })();
    return { handOff, modelFree };
  }
}
