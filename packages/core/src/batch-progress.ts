import { FarmError, GrpcStatus } from "./errors.js";

/**
 * Watches a batch on the model for progress. A batch progresses when its model reports a diffusion step; a stage
 * without steps counts as progressing while it runs within the limit. A batch with no progress for `stallMs` is
 * stalled: its signal aborts (the model stops at its next step check), it gets no more heartbeats, and its tasks
 * are released to other workers.
 */
export class BatchProgress {
  private readonly controller = new AbortController();
  private last: number;
  private timer: NodeJS.Timeout | undefined;
  /** Resolves when the batch stalls (never, if it does not). */
  readonly stalled: Promise<FarmError>;
  private onStall: ((err: FarmError) => void) | undefined;

  constructor(private readonly stallMs: number) {
    this.last = Date.now();
    this.stalled = new Promise((resolve) => (this.onStall = resolve));
    this.arm(stallMs);
  }

  /** Aborts when the batch stalls, with a retryable DEADLINE_EXCEEDED error. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True while the batch progressed within the limit: only then does it earn heartbeats. */
  get alive(): boolean {
    return !this.controller.signal.aborted;
  }

  progressed(): void {
    this.last = Date.now();
  }

  /** The batch left the model: no more stall checks. */
  dispose(): void {
    clearTimeout(this.timer);
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      const idle = Date.now() - this.last;
      if (idle < this.stallMs) return this.arm(this.stallMs - idle);
      const err = new FarmError(
        GrpcStatus.DEADLINE_EXCEEDED,
        `the model made no progress for ${this.stallMs} ms (UNCLIP_STALL_MS): the batch was aborted and released`,
        true,
      );
      this.controller.abort(err);
      this.onStall?.(err);
    }, ms);
  }
}
