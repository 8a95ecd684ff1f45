import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import type { ServiceProcess } from "./service-process.js";

/** What the supervisor needs of a process; a ServiceProcess is one. */
export interface SupervisedProcess {
  readonly child: ChildProcess;
  /** Resolves with the exit code, or null when a signal ended the process. */
  readonly exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** When a process that exited unasked is started again: Kubernetes' CrashLoopBackOff, with shorter times. */
export interface RestartPolicy {
  /** Delay before the first restart, in ms. Default 500. */
  readonly initialDelayMs: number;
  /** Each further restart in a row doubles the delay, up to this many ms. Default 30 000. */
  readonly maxDelayMs: number;
  /** A process that was up this many ms before it exited restarts after initialDelayMs again. Default 60 000. */
  readonly resetAfterMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 500, maxDelayMs: 30_000, resetAfterMs: 60_000 };

/** The delay before a restart that follows `inARow` restarts without a reset (0 for the first). */
export function restartDelayMs(inARow: number, policy: RestartPolicy = DEFAULT_RESTART_POLICY): number {
  return Math.min(policy.initialDelayMs * 2 ** inARow, policy.maxDelayMs);
}

/** A process that ended, or failed to start, without being asked to stop. */
export interface UnplannedExit {
  /** The ended process's id (undefined when it failed before it was spawned). */
  readonly pid: number | undefined;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** How long the process had been ready when it ended, in ms; 0 when it never became ready. */
  readonly uptimeMs: number;
  /** When the supervisor starts it again, in ms from the exit. */
  readonly restartInMs: number;
  /** Why the start failed, when the process never became ready. */
  readonly error?: Error;
}

export interface SupervisedServiceOptions<P extends SupervisedProcess> {
  /** The name in messages, e.g. decoder-worker-2. */
  readonly name: string;
  /** Starts the process and resolves once it is ready; called for the first start and for every restart. */
  readonly start: () => Promise<P>;
  readonly policy?: Partial<RestartPolicy>;
}

type Events<P> = {
  /** A process ended without being asked to; a restart is scheduled. */
  exit: [exit: UnplannedExit];
  /** A new process is ready in place of the one that ended. */
  restart: [process: P, restarts: number];
};

/**
 * One process kept running as a Kubernetes container with `restartPolicy: Always` is: whenever it exits without
 * being asked to (a crash, SIGKILL, or a SIGTERM that did not come through stop(), even when it exits 0), it is
 * started again after an exponential backoff. Only stop() (or stopRestarting(), then an exit) ends it for good.
 */
export class SupervisedService<P extends SupervisedProcess = ServiceProcess> extends EventEmitter<Events<P>> {
  /** Starts the first process; rejects (and supervises nothing) when that one does not become ready. */
  static async start<P extends SupervisedProcess>(opts: SupervisedServiceOptions<P>): Promise<SupervisedService<P>> {
    return new SupervisedService(opts, await opts.start());
  }

  readonly name: string;
  /** Restarts so far (processes that became ready after the first). */
  restarts = 0;
  /** Every unplanned exit and failed restart, oldest first. */
  readonly exits: UnplannedExit[] = [];
  private readonly policy: RestartPolicy;
  private proc: P;
  private readyAt = Date.now();
  private inARow = 0;
  private timer: NodeJS.Timeout | undefined;
  private starting: Promise<P> | undefined;
  private stopping: Promise<void> | undefined;
  private restarting = true;
  private waiters: { resolve(p: P): void; reject(e: Error): void }[] = [];

  private constructor(
    private readonly opts: SupervisedServiceOptions<P>,
    first: P,
  ) {
    super();
    this.name = opts.name;
    this.policy = { ...DEFAULT_RESTART_POLICY, ...opts.policy };
    this.proc = first;
    this.watch(first);
  }

  /** The latest process: the running one or, until its replacement is ready, the one that ended. */
  get current(): P {
    return this.proc;
  }

  /** True once stop() was called. */
  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  /** Sends a signal to the current process as something outside would: when the process ends, it is restarted. */
  kill(signal: NodeJS.Signals = "SIGKILL"): boolean {
    return this.proc.child.kill(signal);
  }

  /** Resolves with the process that replaces the current one, once it is ready; rejects if restarts stop first. */
  restarted(): Promise<P> {
    if (!this.restarting) return Promise.reject(new Error(`${this.name} is no longer restarted`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Makes the next exit final: a pending restart is cancelled and none follows, while the process keeps running
   * until it ends or stop() stops it. A farm shutting down calls this on every process first, so that processes
   * that get the same Ctrl-C as the launcher stay down while it stops them in order.
   */
  stopRestarting(): void {
    this.restarting = false;
    clearTimeout(this.timer);
    for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.name} is no longer restarted`));
  }

  /**
   * Stops the process (signal, default SIGTERM; SIGKILL if it lingers) and supervising it: no restart follows. A
   * pending restart is cancelled; one under way is stopped once it is up. Idempotent.
   */
  stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    this.stopping ??= (async () => {
      this.stopRestarting();
      const starting = await this.starting?.catch(() => undefined);
      await Promise.all([starting?.stop(signal), this.proc.stop(signal)]);
    })();
    return this.stopping;
  }

  private watch(proc: P): void {
    this.proc = proc;
    this.readyAt = Date.now();
    void proc.exited.then((code) => {
      if (!this.restarting) return;
      this.scheduleRestart({ pid: proc.child.pid, code, signal: proc.child.signalCode, uptimeMs: Date.now() - this.readyAt });
    });
  }

  private scheduleRestart(exit: Omit<UnplannedExit, "restartInMs">): void {
    if (exit.uptimeMs >= this.policy.resetAfterMs) this.inARow = 0;
    const record: UnplannedExit = { ...exit, restartInMs: restartDelayMs(this.inARow++, this.policy) };
    this.exits.push(record);
    this.emit("exit", record);
    this.timer = setTimeout(() => void this.restart(), record.restartInMs);
  }

  private async restart(): Promise<void> {
    this.timer = undefined;
    if (!this.restarting) return;
    this.starting = this.opts.start();
    let proc: P;
    try {
      proc = await this.starting;
    } catch (err) {
      if (this.restarting) this.scheduleRestart({ pid: undefined, code: null, signal: null, uptimeMs: 0, error: err as Error });
      return;
    } finally {
      this.starting = undefined;
    }
    if (this.stopping) return; // stop() stops it
    this.restarts++;
    this.watch(proc);
    this.emit("restart", proc, this.restarts);
    for (const w of this.waiters.splice(0)) w.resolve(proc);
  }
}
