import {
  clone,
  create,
  ImageRefSchema,
  JobEventSchema,
  JobSchema,
  JobState,
  type ImageRef,
  type Job,
  type JobEvent,
} from "@unclip/protocol";
import { isTerminal, subscribeEvents, type FarmConnection, type JobStore, type ObjectStore } from "@unclip/core";

export interface Delivery {
  urlTtlSeconds: number;
  includeBytes: boolean;
}

/**
 * Follows one job for a client: relays its progress events, and ends with exactly one terminal event taken from
 * the job record (the source of truth), so a missed progress message can never leave a stream hanging.
 */
export async function followJob(
  conn: FarmConnection,
  jobs: JobStore,
  store: ObjectStore,
  jobId: string,
  delivery: Delivery,
  send: (event: JobEvent) => Promise<void> | void,
  closed: AbortSignal,
  /** Runs once the event subscription is live (so admission cannot race it); its event is sent first. */
  afterSubscribe?: () => Promise<JobEvent>,
): Promise<void> {
  // With afterSubscribe, relayed events wait behind its first event.
  let openGate: () => void = () => undefined;
  let chain: Promise<void> = afterSubscribe ? new Promise((resolve) => (openGate = resolve)) : Promise.resolve();
  let finished = false;
  let done!: () => void;
  const ended = new Promise<void>((resolve) => (done = resolve));
  const enqueue = (event: JobEvent) => {
    chain = chain.then(async () => {
      if (finished || closed.aborted) return;
      await send(await withUrls(store, event, delivery));
    });
  };
  const finish = (job: Job) => {
    if (!isTerminal(job) || finished) return;
    const c = job.state === JobState.SUCCEEDED ? "completed" : job.state === JobState.FAILED ? "failed" : "cancelled";
    enqueue(create(JobEventSchema, { jobId, atMs: BigInt(Date.now()), event: { case: c, value: job } }));
    chain = chain.then(() => {
      finished = true;
      done();
    });
  };
  const sub = subscribeEvents(conn.nc, jobId, (event) => {
    const c = event.event.case;
    // Terminal events come from the job record instead (below).
    if (c === "completed" || c === "failed" || c === "cancelled") return;
    enqueue(event);
  });
  let stopWatch: (() => void) | undefined;
  try {
    await conn.nc.flush();
    if (afterSubscribe) {
      await send(await afterSubscribe());
      openGate();
    }
    stopWatch = await jobs.watch(jobId, finish);
  } catch (err) {
    sub.unsubscribe();
    throw err;
  }
  const onClose = () => {
    finished = true;
    done();
  };
  closed.addEventListener("abort", onClose, { once: true });
  try {
    await ended;
    await chain;
  } finally {
    closed.removeEventListener("abort", onClose);
    sub.unsubscribe();
    stopWatch?.();
  }
}

async function withUrls(store: ObjectStore, event: JobEvent, delivery: Delivery): Promise<JobEvent> {
  const e = event.event;
  switch (e.case) {
    case "preview":
    case "image":
      return create(JobEventSchema, { ...event, event: { case: e.case, value: await deliver(store, e.value, delivery) } });
    case "stageFinished":
      if (!e.value.output) return event;
      return create(JobEventSchema, {
        ...event,
        event: { case: e.case, value: { ...e.value, output: await deliver(store, e.value.output, { ...delivery, includeBytes: false }) } },
      });
    case "completed":
    case "failed":
    case "cancelled":
      return create(JobEventSchema, {
        ...event,
        event: { case: e.case, value: await withImageUrls(store, e.value, { ...delivery, includeBytes: false }) },
      });
    default:
      return event;
  }
}

export async function withImageUrls(store: ObjectStore, job: Job, delivery: Delivery): Promise<Job> {
  const out = clone(JobSchema, job);
  out.images = await Promise.all(job.images.map((i) => deliver(store, i, delivery)));
  return out;
}

async function deliver(store: ObjectStore, image: ImageRef, delivery: Delivery): Promise<ImageRef> {
  const out = create(ImageRefSchema, { ...image, url: await store.presign(image.key, delivery.urlTtlSeconds) });
  if (delivery.includeBytes) out.png = await store.get(image.key);
  return out;
}
