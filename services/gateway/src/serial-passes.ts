/**
 * A periodic job that never overlaps itself: a pass started while one runs joins it, so a slow pass delays the next
 * instead of running beside it. `run()` never rejects (a failure goes to `onError`; the next pass tries again), so
 * timers and request handlers may start passes without awaiting them.
 */
export class SerialPasses {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly work: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Runs a pass every intervalMs (and one at once with `now`). */
  start(intervalMs: number, opts: { now?: boolean } = {}): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.run(), intervalMs);
    if (opts.now) void this.run();
  }

  run(): Promise<void> {
    this.running ??= this.work()
      .catch(this.onError)
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** Stops the timer and waits for a pass under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
