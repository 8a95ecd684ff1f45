/**
 * How many tasks a worker may still pull. A worker holds at most `capacity` tasks (its running batch plus its
 * prefetch), counting both the tasks it holds and those it asked the server for that have not arrived yet, so
 * the rest of the pool's queue stays with the server for other replicas, and every held task is one the worker
 * can start soon.
 *
 * A pull request reserves all free room (`reserve`), each arrival moves one task from requested to held
 * (`delivered`), the request's end returns what it did not fill (`unfilled`), and finished tasks leave (`release`).
 */
export class PrefetchWindow {
  private heldCount = 0;
  private requestedCount = 0;
  private closed = false;
  private waiters: (() => void)[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, not ${capacity}`);
  }

  /** Tasks held: delivered and not yet released. */
  get held(): number {
    return this.heldCount;
  }

  /** Tasks asked for in open pull requests and not yet delivered. */
  get requested(): number {
    return this.requestedCount;
  }

  /** How many more tasks may be asked for now. */
  get room(): number {
    return this.capacity - this.heldCount - this.requestedCount;
  }

  /** Reserves all free room for one pull request and returns its size (0 when there is none). */
  reserve(): number {
    const n = Math.max(0, this.room);
    this.requestedCount += n;
    return n;
  }

  /** One requested task arrived and is now held. */
  delivered(): void {
    if (this.requestedCount === 0) throw new Error("a task arrived that no pull request asked for");
    this.requestedCount--;
    this.heldCount++;
  }

  /** A task arrived beyond what its pull request asked for: held all the same. */
  deliveredBeyondRequest(): void {
    this.heldCount++;
  }

  /** A pull request ended with `n` of its tasks never delivered. */
  unfilled(n: number): void {
    if (n < 0 || n > this.requestedCount) throw new RangeError(`cannot return ${n} of ${this.requestedCount} requested tasks`);
    this.requestedCount -= n;
    if (n > 0) this.wake();
  }

  /** `n` held tasks left the worker (acked, released for redelivery, or terminated). */
  release(n: number): void {
    if (n < 0 || n > this.heldCount) throw new RangeError(`cannot release ${n} of ${this.heldCount} held tasks`);
    this.heldCount -= n;
    if (n > 0) this.wake();
  }

  /** Resolves when there is room to pull into, or at once after close(). */
  async waitForRoom(): Promise<void> {
    while (!this.closed && this.room <= 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Ends every wait: the worker is stopping. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
