import type { FarmStack, SupervisedService } from "@unclip/devstack";
import type { ServiceProcess } from "@unclip/devstack";

/**
 * Kinds of fault in the table. Worker kills come from the harness (worker-sigkill, at a random time) or from the
 * worker's own fault points (named for the point; "fault-point" when the process died before its last log line
 * was out); gateway kills likewise. A process that could not start again is a restart-failed, anything else that
 * ended a process on its own an unexplained-exit (a crash: a finding).
 */
export const FAULT_KINDS = [
  "worker-sigkill",
  "before-store",
  "after-store",
  "after-publish",
  "before-ack",
  "nats-restart",
  "s3-down",
  "s3-stall",
  "gateway-sigkill",
  "admission-after-record",
  "admission-after-publish",
  "fault-point",
  "restart-failed",
  "unexplained-exit",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults that take something away from every process for a while: a retry inside one is legitimate. */
export const WINDOW_KINDS: readonly FaultKind[] = ["nats-restart", "s3-down", "s3-stall"];

/** One injected fault: a process that died (at = its exit) or an outage from `at` to `until`. */
export interface Injection {
  readonly kind: FaultKind;
  /** The process's name (decoder-worker-2, gateway) or the server (nats-server, s3). */
  readonly target: string;
  readonly at: number;
  /** When the outage ended or the process was back (ready); undefined while it lasts or when it never came back. */
  until?: number;
  readonly pid?: number;
  /** What else there is to say (an exit code, a restart that failed). */
  detail?: string;
}

/** A process exit the supervisor saw, kept with the process that ended (its logs say why). */
export interface ObservedExit {
  readonly service: string;
  readonly pid: number | undefined;
  readonly at: number;
  readonly signal: NodeJS.Signals | null;
  readonly code: number | null;
  /** Set when the process could not (re)start. */
  readonly failedStart: boolean;
  /** When the supervisor had the next process ready. */
  back?: number;
}

const FAULT_POINT_LINE = /^fault point (\S+): SIGKILL$/;

/**
 * Watches every supervised process of a farm: exits, restarts, and the log lines of each process (kept by
 * startService) so that an exit can be told apart: killed by the harness, by a fault point, or by itself.
 */
export class FaultLog {
  readonly injections: Injection[] = [];
  readonly exits: ObservedExit[] = [];
  private readonly processes = new Map<number, ServiceProcess>();
  private readonly killedByHarness = new Map<number, FaultKind>();

  watch(farm: FarmStack): void {
    for (const service of farm.services()) this.watchService(service);
  }

  private watchService(service: SupervisedService): void {
    const keep = (p: ServiceProcess) => p.child.pid !== undefined && this.processes.set(p.child.pid, p);
    keep(service.current);
    service.on("exit", (e) => {
      this.exits.push({
        service: service.name,
        pid: e.pid,
        at: Date.now(),
        signal: e.signal,
        code: e.code,
        failedStart: e.error !== undefined,
      });
    });
    service.on("restart", (p) => {
      keep(p);
      const exit = this.exits.findLast((x) => x.service === service.name && x.back === undefined);
      if (exit) exit.back = Date.now();
    });
  }

  /** Notes a SIGKILL the harness is about to send, so the exit that follows is classified as `kind`. */
  killing(pid: number | undefined, kind: FaultKind): void {
    if (pid !== undefined) this.killedByHarness.set(pid, kind);
  }

  /** Starts an outage; call the returned function when it ends. */
  outage(kind: FaultKind, target: string): (detail?: string) => void {
    const injection: Injection = { kind, target, at: Date.now() };
    this.injections.push(injection);
    return (detail) => {
      injection.until = Date.now();
      if (detail) injection.detail = detail;
    };
  }

  /** Why a process ended: the harness's kill, the fault point its last log lines name, or its own doing. */
  classify(exit: ObservedExit): FaultKind {
    if (exit.failedStart) return "restart-failed";
    const byHarness = exit.pid === undefined ? undefined : this.killedByHarness.get(exit.pid);
    if (byHarness) return byHarness;
    const logs = exit.pid === undefined ? [] : (this.processes.get(exit.pid)?.logs ?? []);
    for (const line of logs.slice(-20).reverse()) {
      const point = FAULT_POINT_LINE.exec(String(line.msg ?? ""));
      if (point && (FAULT_KINDS as readonly string[]).includes(point[1]!)) return point[1] as FaultKind;
    }
    // Nothing but the harness and the fault points sends SIGKILL; the point's line can be lost with the process.
    return exit.signal === "SIGKILL" ? "fault-point" : "unexplained-exit";
  }

  /** Every fault: the outages, then one injection per process exit. */
  all(): Injection[] {
    const exits = this.exits.map((e): Injection => {
      const kind = this.classify(e);
      return {
        kind,
        target: e.service,
        at: e.at,
        until: e.back,
        pid: e.pid,
        detail:
          kind === "unexplained-exit" || kind === "restart-failed" ? `exited with ${e.signal ?? `code ${String(e.code)}`}` : undefined,
      };
    });
    return [...this.injections, ...exits].sort((a, b) => a.at - b.at);
  }
}
