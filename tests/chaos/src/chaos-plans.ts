import type { ChaosOptions } from "./chaos-run.js";

type Plan = Omit<ChaosOptions, "log" | "logDir">;

/** Each passage through a worker's hand-off point kills the worker with this probability. */
const WORKER_POINTS = "before-store=0.01,after-store=0.01,after-publish=0.01,before-ack=0.01";
const GATEWAY_POINTS = "admission-after-record=0.01,admission-after-publish=0.01";

/**
 * `npm run chaos`: 200 jobs over about 3.5 minutes while NATS is killed twice, S3 is down for 30 s and stalls for
 * 30 s, the gateway is killed three times mid-admission, a worker is killed every 15 s and the fault points fire.
 * On two cores a killed worker can take 20-30 s to be back (the other processes keep the CPUs busy), so the rates
 * leave each pool a live worker most of the time.
 */
export const FULL_PLAN: Plan = {
  jobs: 200,
  seed: 1,
  workersPerPool: 2,
  maxInFlight: 16,
  submitSpanMs: 200_000,
  plan: {
    steps: [
      { atMs: 15_000, fault: "nats-restart" },
      { atMs: 35_000, fault: "s3-down" },
      { atMs: 80_000, fault: "gateway-sigkill" },
      { atMs: 95_000, fault: "s3-stall" },
      { atMs: 140_000, fault: "nats-restart" },
      { atMs: 160_000, fault: "gateway-sigkill" },
      { atMs: 185_000, fault: "gateway-sigkill" },
    ],
    workerKillEveryMs: 15_000,
    workerKillsUntilMs: 200_000,
    natsDownMs: 3_000,
    s3DownMs: 30_000,
    s3StallMs: 30_000,
  },
  workerFaultPoints: WORKER_POINTS,
  gatewayFaultPoints: GATEWAY_POINTS,
  ackWaitMs: 10_000,
  phaseLimitMs: 600_000,
  idleMs: 90_000,
};

/** The short run in `npm test`: 24 jobs, one fault of each planned kind with 4 s outages; under 3 minutes. */
export const SHORT_PLAN: Plan = {
  jobs: 24,
  seed: 2,
  workersPerPool: 2,
  maxInFlight: 24,
  submitSpanMs: 24_000,
  plan: {
    steps: [
      { atMs: 3_000, fault: "nats-restart" },
      { atMs: 8_000, fault: "s3-down" },
      { atMs: 14_000, fault: "s3-stall" },
      { atMs: 20_000, fault: "gateway-sigkill" },
    ],
    workerKillEveryMs: 12_000,
    workerKillsUntilMs: 24_000,
    natsDownMs: 1_500,
    s3DownMs: 4_000,
    s3StallMs: 4_000,
  },
  workerFaultPoints: WORKER_POINTS,
  gatewayFaultPoints: "admission-after-record=0.02,admission-after-publish=0.02",
  ackWaitMs: 10_000,
  phaseLimitMs: 150_000,
  idleMs: 30_000,
};
