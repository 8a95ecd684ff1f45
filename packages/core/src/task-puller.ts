import type { Consumer, ConsumerInfo, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "./logger.js";
import { PrefetchWindow } from "./prefetch-window.js";

/** The pool's durable consumers, one per lane; without `batch` the puller serves the interactive lane alone. */
export interface PullLanes {
  interactive: Consumer;
  batch?: Consumer;
}

/** When both lanes have tasks waiting, one pull in this many goes to the batch lane, so batch work cannot starve. */
export const BATCH_SHARE = 4;
/** How long a pull waits on one lane while the other may receive work: it bounds how late that work is noticed. */
const LANE_SWITCH_MS = 1_000;

export interface TaskPullerOptions {
  /** Most tasks held at once: the running batch plus the prefetch. */
  capacity: number;
  /** How long one pull request waits on the server for tasks (default 5000). It also bounds how long stop() waits. */
  expiresMs?: number;
  /** Called after consecutive pull failures, e.g. to recreate a consumer that vanished with a nats-server's store. */
  recover?: () => Promise<void>;
}

/**
 * Pulls a pool's tasks only into free room: each pull request asks for exactly the room the worker has, so it never
 * holds more than its capacity and the server hands the rest of the queue to other replicas. Requests overlap (a
 * batch that finishes early frees room for a new request while an older one is still open), so a worker with room
 * is never without an open request while tasks wait.
 *
 * With two lanes, each pull request goes to one lane: the interactive lane whenever it has tasks waiting (but for
 * one pull in BATCH_SHARE when the batch lane waits too), otherwise the batch lane. A worker with nothing to do waits
 * on the interactive lane for at most LANE_SWITCH_MS before it looks at the batch lane again.
 *
 * Every delivered task goes to `onTask`, which owns it until it calls `window.release()`.
 */
export class TaskPuller {
  readonly window: PrefetchWindow;
  private stopping = false;
  private failures = 0;
  private readonly open = new Set<Promise<void>>();
  private loop: Promise<void> | undefined;
  private readonly expiresMs: number;
  private contended = 0;
  private probes = 0;

  constructor(
    private readonly lanes: PullLanes,
    private readonly onTask: (msg: JsMsg) => Promise<void>,
    private readonly log: Logger,
    private readonly opts: TaskPullerOptions,
  ) {
    this.window = new PrefetchWindow(opts.capacity);
    this.expiresMs = opts.expiresMs ?? 5_000;
  }

  /** False while pulls keep failing (three or more in a row). */
  get healthy(): boolean {
    return this.failures < 3;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /**
   * Stops asking for tasks and waits for the open pull requests to end: a task the server delivers meanwhile
   * still reaches `onTask` (which releases it at once when its worker is stopping) instead of a closed inbox, where
   * it would sit unacknowledged until its ack wait ran out.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.window.close();
    await this.loop;
    await Promise.all(this.open);
  }

  private async run(): Promise<void> {
    for (;;) {
      await this.window.waitForRoom();
      if (this.stopping) return;
      const n = this.window.reserve();
      const { consumer, expiresMs } = await this.chooseLane();
      const request = this.pull(consumer, n, expiresMs);
      this.open.add(request);
      void request.finally(() => this.open.delete(request));
    }
  }

  private async chooseLane(): Promise<{ consumer: Consumer; expiresMs: number }> {
    const { interactive, batch } = this.lanes;
    if (!batch) return { consumer: interactive, expiresMs: this.expiresMs };
    let lanes: [ConsumerInfo, ConsumerInfo];
    try {
      lanes = await Promise.all([interactive.info(), batch.info()]);
    } catch {
      // Cannot read the counts (a reconnect): the pull itself will report the failure.
      return { consumer: interactive, expiresMs: LANE_SWITCH_MS };
    }
    const [i, b] = lanes;
    if (b.num_pending === 0) return { consumer: interactive, expiresMs: LANE_SWITCH_MS };
    // num_pending leaves out tasks waiting for redelivery (a nak'ed or timed-out interactive task): while the
    // interactive lane has tasks out, it still gets one pull in BATCH_SHARE, so its retries do not wait for the batch
    // lane to drain.
    if (i.num_pending === 0 && (i.num_ack_pending === 0 || ++this.probes % BATCH_SHARE !== 0)) {
      return { consumer: batch, expiresMs: LANE_SWITCH_MS };
    }
    if (i.num_pending === 0) return { consumer: interactive, expiresMs: LANE_SWITCH_MS };
    return { consumer: ++this.contended % BATCH_SHARE === 0 ? batch : interactive, expiresMs: LANE_SWITCH_MS };
  }

  private async pull(consumer: Consumer, n: number, expiresMs: number): Promise<void> {
    let received = 0;
    try {
      const messages: ConsumerMessages = await consumer.fetch({ max_messages: n, expires: expiresMs });
      for await (const msg of messages) {
        // After a reconnect nats.js can deliver more than one pull request asked for (it pulls again while the
        // server still answers the first one). The extra task is held rather than released, since a release would
        // count as one of its deliveries; the window is over capacity until it leaves.
        if (++received <= n) this.window.delivered();
        else this.window.deliveredBeyondRequest();
        await this.onTask(msg);
      }
      this.failures = 0;
    } catch (err) {
      this.failures++;
      this.log.warn({ err, failures: this.failures }, "pulling tasks failed: retrying");
      if (this.failures >= 3) await this.opts.recover?.().catch((e) => this.log.warn({ err: e }, "could not recover the consumer"));
      await new Promise((r) => setTimeout(r, Math.min(10_000, 250 * 2 ** this.failures)));
    } finally {
      this.window.unfilled(Math.max(0, n - received));
    }
  }
}
