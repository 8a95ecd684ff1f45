import type { Logger } from "./logger.js";

type Step = [name: string, run: () => Promise<unknown> | unknown];

/**
 * Runs cleanup steps once, in order, each even when an earlier one failed; installs SIGTERM/SIGINT handlers once.
 * A second signal, or the force timeout, exits at once.
 */
export class Shutdown {
  private readonly steps: Step[] = [];
  private running: Promise<void> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly forceMs: number,
  ) {}

  add(name: string, run: () => Promise<unknown> | unknown): this {
    this.steps.push([name, run]);
    return this;
  }

  installSignalHandlers(): this {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.running) {
        this.log.warn({ signal }, "second signal: exiting now");
        process.exit(1);
      }
      this.log.info({ signal }, "shutting down");
      void this.run().then(() => process.exit(0));
    };
    process.on("SIGTERM", onSignal).on("SIGINT", onSignal);
    return this;
  }

  run(): Promise<void> {
    this.running ??= this.runSteps();
    return this.running;
  }

  private async runSteps(): Promise<void> {
    const force = setTimeout(() => {
      this.log.error({ forceMs: this.forceMs }, "shutdown took too long: exiting");
      process.exit(1);
    }, this.forceMs);
    force.unref();
    for (const [name, run] of this.steps) {
      try {
        await run();
      } catch (err) {
        this.log.error({ err, step: name }, "shutdown step failed");
      }
    }
    clearTimeout(force);
    this.log.info("stopped");
  }
}
