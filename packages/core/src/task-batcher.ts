import type { JsMsg } from "@nats-io/jetstream";

/**
 * Holds delivered messages and hands them out in batches: up to maxBatch messages sharing the oldest message's
 * batch key, waiting at most maxWaitMs after the first arrival for the batch to fill.
 */
export class TaskBatcher<T> {
  private readonly held: { msg: JsMsg; item: T; key: string }[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  /**
   * Whether the server had more tasks waiting behind the last one delivered (its delivery info says how many). With
   * none, no batch-mate is on its way, and waiting maxWaitMs for one would only add latency to every lone task.
   */
  private moreWaiting = true;

  constructor(
    private readonly maxBatch: number,
    private readonly maxWaitMs: number,
  ) {}

  push(msg: JsMsg, item: T, key: string): void {
    this.held.push({ msg, item, key });
    this.moreWaiting = pendingAfter(msg) !== 0;
    this.wake?.();
  }

  get size(): number {
    return this.held.length;
  }

  /** Every message held but not yet handed out (they get heartbeats, and are released on shutdown). */
  messages(): JsMsg[] {
    return this.held.map((h) => h.msg);
  }

  /** Stops waiting; next() then hands out what is held without waiting to fill, and undefined once empty. */
  close(): void {
    this.closed = true;
    this.wake?.();
  }

  async next(): Promise<{ msg: JsMsg; item: T }[] | undefined> {
    while (this.held.length === 0) {
      if (this.closed) return undefined;
      await this.waitForPush(Infinity);
    }
    const deadline = Date.now() + this.maxWaitMs;
    while (!this.closed && this.moreWaiting && this.countKey(this.held[0]!.key) < this.maxBatch && Date.now() < deadline) {
      await this.waitForPush(deadline - Date.now());
    }
    const key = this.held[0]!.key;
    const batch: { msg: JsMsg; item: T }[] = [];
    for (let i = 0; i < this.held.length && batch.length < this.maxBatch; ) {
      if (this.held[i]!.key === key) batch.push(this.held.splice(i, 1)[0]!);
      else i++;
    }
    return batch;
  }

  private countKey(key: string): number {
    return this.held.reduce((n, h) => n + (h.key === key ? 1 : 0), 0);
  }

  private waitForPush(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, Math.max(0, ms)) : undefined;
      const self = this;
      function done() {
        if (timer) clearTimeout(timer);
        self.wake = undefined;
        resolve();
      }
      this.wake = done;
    });
  }
}

/** Tasks waiting on the server behind this one, or -1 when unknown (a message without JetStream delivery info). */
function pendingAfter(msg: JsMsg): number {
  try {
    return msg.info.pending;
  } catch {
    return -1;
  }
}
