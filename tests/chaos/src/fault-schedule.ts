import type { FarmStack } from "@unclip/devstack";
import type { Pool } from "@unclip/protocol";
import type { FaultLog } from "./fault-log.js";

/** A fault the harness injects from outside at a planned time (worker fault points fire on their own). */
export type PlannedFault = "nats-restart" | "s3-down" | "s3-stall" | "gateway-sigkill";

export interface FaultPlan {
  /** Planned faults, each at a time from the start of the chaos phase. */
  readonly steps: readonly { readonly atMs: number; readonly fault: PlannedFault }[];
  /** A SIGKILL of a random worker (pools in turn) this often, at a random time within each period. */
  readonly workerKillEveryMs: number;
  /** No more of those SIGKILLs after this long from the start (the fault points go on), so the last jobs can end. */
  readonly workerKillsUntilMs: number;
  /** How long nats-server stays down, the S3 server stays down, and S3 stalls. */
  readonly natsDownMs: number;
  readonly s3DownMs: number;
  readonly s3StallMs: number;
}

export interface ScheduleHooks {
  /** Resolves when the client next starts a job (the gateway is then admitting it). */
  nextSubmission(): Promise<void>;
  readonly random: () => number;
  readonly log: (line: string) => void;
}

const POOL_ORDER: readonly Pool[] = ["decoder", "upscale", "prior"];

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Retries a restart that can fail while the port is being released; gives up after 20 s. */
async function restartWithin(what: string, restart: () => Promise<void>, log: (line: string) => void): Promise<string | undefined> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await restart();
      return undefined;
    } catch (err) {
      const message = `${what} restart failed: ${(err as Error).message.split("\n")[0]}`;
      if (Date.now() > deadline) return message;
      log(`${message}; trying again`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/**
 * Injects the plan's faults into a running farm until every step ran and `stop` is aborted; an outage in
 * progress always ends (the server comes back) before this returns, so a stopped schedule leaves a whole farm.
 */
export async function runFaultSchedule(farm: FarmStack, faults: FaultLog, plan: FaultPlan, hooks: ScheduleHooks, stop: AbortSignal) {
  const started = Date.now();
  const t = () => `t+${((Date.now() - started) / 1000).toFixed(1)}s`;
  const { log, random } = hooks;

  const killWorkers = async () => {
    for (let n = 0; !stop.aborted && Date.now() - started < plan.workerKillsUntilMs; n++) {
      const offset = random() * plan.workerKillEveryMs;
      await sleep(offset, stop);
      if (stop.aborted || Date.now() - started >= plan.workerKillsUntilMs) return;
      const pool = POOL_ORDER[n % POOL_ORDER.length]!;
      const alive = farm.workers(pool).filter((w) => w.current.child.exitCode === null && w.current.child.signalCode === null);
      const victim = alive[Math.floor(random() * alive.length)];
      if (victim) {
        faults.killing(victim.current.child.pid, "worker-sigkill");
        log(`${t()} SIGKILL ${victim.name} (pid ${String(victim.current.child.pid)})`);
        victim.kill("SIGKILL");
      }
      await sleep(plan.workerKillEveryMs - offset, stop);
    }
  };

  const inject = async (fault: PlannedFault) => {
    switch (fault) {
      case "nats-restart": {
        const end = faults.outage(fault, "nats-server");
        log(`${t()} SIGKILL nats-server for ${String(plan.natsDownMs / 1000)} s`);
        await farm.nats.kill();
        await new Promise((resolve) => setTimeout(resolve, plan.natsDownMs));
        end(await restartWithin("nats-server", () => farm.nats.restart(), log));
        log(`${t()} nats-server back`);
        return;
      }
      case "s3-down": {
        const end = faults.outage(fault, "s3");
        log(`${t()} S3 server down for ${String(plan.s3DownMs / 1000)} s`);
        await farm.s3.halt();
        await new Promise((resolve) => setTimeout(resolve, plan.s3DownMs));
        end(await restartWithin("S3 server", () => farm.s3.restart(), log));
        log(`${t()} S3 server back`);
        return;
      }
      case "s3-stall": {
        const proxy = farm.s3Proxy;
        if (!proxy) throw new Error("s3-stall needs the farm's S3 proxy (startFarmStack({ s3Proxy: true }))");
        const end = faults.outage(fault, "s3");
        log(`${t()} S3 stalls for ${String(plan.s3StallMs / 1000)} s`);
        proxy.setMode("stall");
        await new Promise((resolve) => setTimeout(resolve, plan.s3StallMs));
        proxy.setMode("pass");
        end();
        log(`${t()} S3 answers again`);
        return;
      }
      case "gateway-sigkill": {
        // Mid-admission: a few milliseconds after a client asked for a new job.
        await Promise.race([hooks.nextSubmission(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
        await new Promise((resolve) => setTimeout(resolve, random() * 30));
        const pid = farm.gateway.current.child.pid;
        faults.killing(pid, "gateway-sigkill");
        log(`${t()} SIGKILL gateway (pid ${String(pid)}) while it admits a job`);
        farm.gateway.kill("SIGKILL");
        return;
      }
    }
  };

  const planned = (async () => {
    for (const step of plan.steps) {
      await sleep(started + step.atMs - Date.now(), stop);
      if (stop.aborted) return;
      await inject(step.fault);
    }
  })();
  const workers = plan.workerKillEveryMs > 0 ? killWorkers() : Promise.resolve();
  await planned;
  await workers;
}
