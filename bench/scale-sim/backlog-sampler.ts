import { setTimeout as sleep } from "node:timers/promises";
import { poolBacklog, type FarmConnection } from "@unclip/core";
import type { Pool } from "@unclip/protocol";

/** The pool's consumers (both lanes) at one moment: tasks not yet delivered, and delivered but not acknowledged. */
export interface BacklogSample {
  readonly atMs: number;
  readonly pending: number;
  readonly inFlight: number;
}

/** Reads the pool's consumers every `periodMs` and hands each reading to `onSample` before the next. */
export class BacklogSampler {
  readonly samples: BacklogSample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly jsm: FarmConnection["jsm"],
    private readonly pool: Pool,
    private readonly periodMs: number,
    private readonly onSample: (sample: BacklogSample) => Promise<void> = async () => undefined,
  ) {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const next = Date.now() + this.periodMs;
      const sample = { atMs: Date.now(), ...(await poolBacklog(this.jsm, this.pool)) };
      this.samples.push(sample);
      await this.onSample(sample);
      await sleep(Math.max(0, next - Date.now()));
    }
  }
}
