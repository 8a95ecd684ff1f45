/**
 * A counting semaphore over decoded pixels: uploads are decoded in full before admission, and this bounds how many
 * pixels are being decoded at once, so many parallel uploads queue here instead of raising the gateway's memory and
 * starving the event loop's libuv threads. Waiters are served in arrival order.
 */
export class PixelBudget {
  private used = 0;
  private readonly waiting: { pixels: number; resolve: () => void }[] = [];

  constructor(readonly capacity: number) {}

  /** Runs fn while holding `pixels` of the budget (at most the capacity). */
  async run<T>(pixels: number, fn: () => Promise<T>): Promise<T> {
    const want = Math.min(pixels, this.capacity);
    if (this.waiting.length > 0 || this.used + want > this.capacity) {
      await new Promise<void>((resolve) => this.waiting.push({ pixels: want, resolve }));
    } else {
      this.used += want;
    }
    try {
      return await fn();
    } finally {
      this.used -= want;
      this.admit();
    }
  }

  /** Pixels held now (for tests and metrics). */
  get inUse(): number {
    return this.used;
  }

  private admit(): void {
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.pixels <= this.capacity) {
      const next = this.waiting.shift()!;
      this.used += next.pixels;
      next.resolve();
    }
  }
}
