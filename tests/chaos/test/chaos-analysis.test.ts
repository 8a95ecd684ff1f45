import { describe, expect, it } from "vitest";
import { create, ImageRefSchema, JobEventSchema, JobSchema, JobState, Stage, type JobEvent } from "@unclip/protocol";
import { faultTable, judgeJob, taskRetries, violations } from "../src/chaos-analysis.js";
import type { Injection } from "../src/fault-log.js";
import type { JobRun } from "../src/job-client.js";
import type { JobSpec } from "../src/job-specs.js";

const T0 = 1_800_000_000_000;
const spec: JobSpec = { index: 3, kind: "generate", size: 64, numImages: 1, seed: 7n, prompt: "a red square" };

function started(at: number, stage: Stage, worker: string, attempt: number, index = 0): JobEvent {
  return create(JobEventSchema, {
    jobId: "job-1",
    atMs: BigInt(T0 + at),
    event: { case: "stageStarted", value: { stage, index, worker, attempt } },
  });
}
function image(at: number, index: number): JobEvent {
  return create(JobEventSchema, {
    jobId: "job-1",
    atMs: BigInt(T0 + at),
    event: { case: "image", value: create(ImageRefSchema, { index, size: 64, key: `renders/job-1/${String(index)}/64.png` }) },
  });
}
const succeeded = (indices: number[]) =>
  create(JobSchema, {
    jobId: "job-1",
    state: JobState.SUCCEEDED,
    images: indices.map((index) => create(ImageRefSchema, { index, size: 64 })),
  });

function run(streams: JobEvent[][], final = succeeded([0])): JobRun {
  return {
    spec,
    requestId: "r-1",
    submittedAt: T0,
    jobId: "job-1",
    streams: streams.map((events) => ({ openedAt: T0, events: events.map((event) => ({ event, at: Number(event.atMs) })) })),
    final,
    endedAt: T0 + 20_000,
  };
}
const died = (target: string, at: number, kind: Injection["kind"] = "worker-sigkill"): Injection => ({ kind, target, at: T0 + at });
const hashes = (h: string) => new Map([[3, new Map([[0, h]])]]);

describe("taskRetries", () => {
  it("explains a redelivery by the death of the worker that had the task", () => {
    const r = run([[started(1_000, Stage.DECODER, "decoder-worker-1", 1), started(6_000, Stage.DECODER, "decoder-worker-2", 2)]]);
    const kill = died("decoder-worker-1", 2_000, "after-store");
    const [retry] = taskRetries(r, [died("decoder-worker-2", 1_500), kill]);
    expect(retry).toMatchObject({ stage: "DECODER", attempt: 2, worker: "decoder-worker-2", previousWorker: "decoder-worker-1" });
    expect(retry!.cause).toBe(kill);
  });

  it("leaves unexplained a redelivery from a worker that was alive, with no outage on", () => {
    const r = run([[started(1_000, Stage.PRIOR, "prior-worker-1", 1), started(6_000, Stage.PRIOR, "prior-worker-2", 2)]]);
    // Another worker's death, and one of the same worker after the redelivery, explain nothing.
    const [retry] = taskRetries(r, [died("prior-worker-2", 2_000), died("prior-worker-1", 7_000)]);
    expect(retry!.cause).toBeUndefined();
    const verdict = judgeJob(r, [], hashes("a"), hashes("a"));
    expect(verdict.suspicious).toHaveLength(1);
    expect(violations([verdict])).toEqual([
      "job 3 (job-1): PRIOR of image 0 started again (attempt 2 on prior-worker-2) while prior-worker-1 was alive and no outage was on",
    ]);
  });

  it("explains a redelivery by an outage between the two attempts, or in the 10 s after one ended before the first", () => {
    const r = run([[started(1_000, Stage.UPSCALE_256, "upscale-worker-1", 1), started(9_000, Stage.UPSCALE_256, "upscale-worker-1", 2)]]);
    const stall: Injection = { kind: "s3-stall", target: "s3", at: T0 + 2_000, until: T0 + 6_000 };
    expect(taskRetries(r, [stall])[0]!.cause).toBe(stall);
    // nats-server back 8 s before the first attempt: its clients may still be reconnecting.
    const justBefore: Injection = { kind: "nats-restart", target: "nats-server", at: T0 - 12_000, until: T0 - 8_000 };
    expect(taskRetries(r, [justBefore])[0]!.cause).toBe(justBefore);
    const longBefore: Injection = { kind: "s3-down", target: "s3", at: T0 - 30_000, until: T0 - 11_000 };
    expect(taskRetries(r, [longBefore])[0]!.cause).toBeUndefined();
  });

  it("without the first attempt in sight, takes the death of any worker of the stage's pool since the job started", () => {
    const r = run([[started(6_000, Stage.IMAGE_ENCODE, "prior-worker-2", 2)]]);
    expect(taskRetries(r, [died("decoder-worker-1", 2_000)])[0]!.cause).toBeUndefined();
    expect(taskRetries(r, [died("prior-worker-1", 2_000)])[0]!.cause?.target).toBe("prior-worker-1");
  });
});

describe("judgeJob", () => {
  it("counts a second image event for an index within one stream, and a second image of an index in the record", () => {
    expect(judgeJob(run([[image(5_000, 0)], [image(6_000, 0)]]), [], hashes("a"), hashes("a")).duplicates).toBe(0);
    const twice = judgeJob(run([[image(5_000, 0), image(5_100, 0)]]), [], hashes("a"), hashes("a"));
    expect(twice).toMatchObject({ duplicates: 1, duplicateNotes: ["image 0: 2 image events in stream 1"] });
    expect(violations([twice])).toEqual(["job 3 (job-1) has duplicates: image 0: 2 image events in stream 1"]);
    const crash: Injection = { kind: "unexplained-exit", target: "upscale-worker-1", at: T0, pid: 42, detail: "exited with code 1" };
    expect(violations([], [crash, died("decoder-worker-1", 2_000)])).toEqual([
      "upscale-worker-1 (pid 42) crashed: exited with code 1 (see its log)",
    ]);
    expect(judgeJob(run([[image(5_000, 0)]], succeeded([0, 0])), [], hashes("a"), hashes("a")).duplicates).toBe(1);
  });

  it("compares each image with the fault-free run's", () => {
    expect(judgeJob(run([]), [], hashes("a"), hashes("a")).mismatches).toBe(0);
    expect(judgeJob(run([]), [], hashes("a"), hashes("b")).mismatches).toBe(1);
    expect(judgeJob(run([]), [], hashes("a"), new Map()).mismatches).toBe(1);
  });

  it("calls a job lost without a terminal state, and a failure permanent only when faults used up its deliveries", () => {
    const lost = { ...run([]), final: undefined };
    expect(judgeJob(lost, [], hashes("a"), hashes("a")).outcome).toBe("lost");
    const outOfDeliveries = create(JobSchema, {
      jobId: "job-1",
      state: JobState.FAILED,
      error: "the decoder stage of image 0 was delivered 8 times without finishing",
    });
    const retried = [started(1_000, Stage.DECODER, "decoder-worker-1", 1), started(6_000, Stage.DECODER, "decoder-worker-1", 2)];
    const kill = died("decoder-worker-1", 2_000);
    expect(judgeJob(run([retried], outOfDeliveries), [kill], hashes("a"), hashes("a")).outcome).toBe("failed-permanent");
    expect(judgeJob(run([retried], outOfDeliveries), [], hashes("a"), hashes("a")).outcome).toBe("failed");
    // Faults that hit another task of the job do not excuse this one.
    const otherTask = [started(1_000, Stage.PRIOR, "prior-worker-1", 1), started(6_000, Stage.PRIOR, "prior-worker-2", 2)];
    const priorKill = died("prior-worker-1", 2_000);
    expect(judgeJob(run([otherTask], outOfDeliveries), [priorKill], hashes("a"), hashes("a")).outcome).toBe("failed");
    const lastRetryFailed = create(JobSchema, {
      jobId: "job-1",
      state: JobState.FAILED,
      error: "the decoder stage (image 0) failed 8 times; last error: the object store did not answer within 10000 ms",
    });
    expect(judgeJob(run([retried], lastRetryFailed), [kill], hashes("a"), hashes("a")).outcome).toBe("failed-permanent");
    const other = create(JobSchema, { jobId: "job-1", state: JobState.FAILED, error: "object store unavailable" });
    expect(judgeJob(run([retried], other), [kill], hashes("a"), hashes("a")).outcome).toBe("failed");
  });
});

describe("faultTable", () => {
  it("counts per kind of fault the jobs it touched, and every job in the last row", () => {
    const killed = run([[started(1_000, Stage.DECODER, "decoder-worker-1", 1), started(6_000, Stage.DECODER, "decoder-worker-2", 2)]]);
    const untouched = { ...run([]), submittedAt: T0 + 30_000, endedAt: T0 + 31_000 };
    const faults: Injection[] = [
      died("decoder-worker-1", 2_000),
      { kind: "nats-restart", target: "nats-server", at: T0 + 10_000, until: T0 + 12_000 },
    ];
    const verdicts = [killed, untouched].map((r) => judgeJob(r, faults, hashes("a"), hashes("a")));
    const rows = faultTable([killed, untouched], verdicts, faults);
    expect(rows.map((r) => [r.kind, r.injections, r.jobsAffected, r.taskRetries, r.succeeded])).toEqual([
      ["worker-sigkill", 1, 1, 1, 1],
      ["nats-restart", 1, 1, 0, 1],
      ["all jobs", 2, 2, 1, 2],
    ]);
    expect(rows.at(-1)).toMatchObject({ lost: 0, duplicates: 0, mismatches: 0, suspicious: 0, maxLatencyS: 20 });
  });
});
