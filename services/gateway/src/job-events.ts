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
import { FarmError, GrpcStatus, isTerminal, subscribeEvents, type FarmConnection, type JobStore, type ObjectStore } from "@unclip/core";

/** Events waiting to be sent to one client beyond which its step progress events are dropped. */
const MAX_STEP_BACKLOG = 64;

export interface Delivery {
  urlTtlSeconds: number;
  includeBytes: boolean;
}

/**
 * Follows one job for a client: relays its progress events, and ends with exactly one terminal event taken from
 * the job record (the source of truth), so a missed progress message can never leave a stream hanging. Any failure
 * on the way (the object store while fetching inline bytes, the record's watch, admission in `afterSubscribe`) ends
 * the follow and is thrown to the caller, which ends the stream with a status; none is left to float. When the
 * client goes away (`closed`), the event subscription and the record's watch are released at once, even while a
 * send or an object-store read is still pending.
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
  let finished = false;
  let failure: unknown;
  let done!: () => void;
  const ended = new Promise<void>((resolve) => (done = resolve));
  // With afterSubscribe, relayed events wait behind its first event.
  let openGate: () => void = () => undefined;
  let chain: Promise<void> = afterSubscribe ? new Promise((resolve) => (openGate = resolve)) : Promise.resolve();
  const end = (err?: unknown) => {
    if (finished) return;
    finished = true;
    failure = err;
    openGate(); // events still queued behind the gate see `finished` and are dropped
    done();
  };
  let backlog = 0;
  const enqueue = (event: JobEvent) => {
    backlog++;
    chain = chain
      .then(async () => {
        if (finished) return;
        const withRefs = await withUrls(store, jobId, event, delivery);
        if (!finished) await send(withRefs);
      })
      .catch(end)
      .finally(() => backlog--);
  };
  let terminalSeen = false;
  const finish = (job: Job) => {
    if (!isTerminal(job) || terminalSeen) return;
    terminalSeen = true;
    const c = job.state === JobState.SUCCEEDED ? "completed" : job.state === JobState.FAILED ? "failed" : "cancelled";
    enqueue(create(JobEventSchema, { jobId, atMs: BigInt(Date.now()), event: { case: c, value: job } }));
    chain = chain.then(() => end());
  };
  const lostWatch = (err: Error) =>
    end(
      new FarmError(GrpcStatus.UNAVAILABLE, `lost track of job ${jobId} (${err.message}); follow it again with WatchJob`, true, {
        cause: err,
      }),
    );

  const imagesSent = new Set<number>();
  const onClose = () => end();
  closed.addEventListener("abort", onClose, { once: true });
  if (closed.aborted) onClose();
  const sub = subscribeEvents(conn.nc, jobId, (event) => {
    const c = event.event.case;
    // Terminal events come from the job record instead (below).
    if (c === "completed" || c === "failed" || c === "cancelled") return;
    // A client slower than the job's step events would make the gateway hold them all: past a bound, step counts
    // (each one superseded by the next) are left out; images and stage events are always sent.
    if (c === "step" && backlog >= MAX_STEP_BACKLOG) return;
    // A final-stage task redone after its worker died between announcing the image and its ack announces it again
    // (the bytes are the same: renders are deterministic): a client sees one image event per index.
    if (c === "image") {
      if (imagesSent.has(event.event.value.index)) return;
      imagesSent.add(event.event.value.index);
    }
    enqueue(event);
  });
  let stopWatch: (() => void) | undefined;
  const setup = async () => {
    await conn.nc.flush();
    if (afterSubscribe) {
      const first = await afterSubscribe();
      if (finished) return;
      await send(first);
      openGate();
    }
    if (finished) return;
    const stop = await jobs.watch(conn.nc, jobId, finish, lostWatch);
    // The follow may have ended while the watch was being set up: then nothing else would stop it.
    if (finished) stop();
    else stopWatch = stop;
  };
  setup().catch(end);
  try {
    await ended;
  } finally {
    closed.removeEventListener("abort", onClose);
    sub.unsubscribe();
    stopWatch?.();
  }
  if (failure !== undefined && !closed.aborted) throw failure;
}

async function withUrls(store: ObjectStore, jobId: string, event: JobEvent, delivery: Delivery): Promise<JobEvent> {
  const e = event.event;
  switch (e.case) {
    case "preview":
    case "image":
      return create(JobEventSchema, { ...event, event: { case: e.case, value: await deliver(store, jobId, e.value, delivery) } });
    case "stageFinished":
      if (!e.value.output) return event;
      return create(JobEventSchema, {
        ...event,
        event: {
          case: e.case,
          value: { ...e.value, output: await deliver(store, jobId, e.value.output, { ...delivery, includeBytes: false }) },
        },
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
  out.images = await Promise.all(job.images.map((i) => deliver(store, job.jobId, i, delivery)));
  return out;
}

/**
 * Presigns (or reads) one image of `jobId`. Only keys under the job's own renders/<jobId>/ are ever handed out, so a
 * forged progress event or record cannot turn the gateway into a signer for any other object of the bucket.
 */
async function deliver(store: ObjectStore, jobId: string, image: ImageRef, delivery: Delivery): Promise<ImageRef> {
  if (!image.key.startsWith(`renders/${jobId}/`)) {
    throw new FarmError(GrpcStatus.INTERNAL, `job ${jobId} refers to image key ${JSON.stringify(image.key)} outside renders/${jobId}/`);
  }
  const out = create(ImageRefSchema, { ...image, url: await store.presign(image.key, delivery.urlTtlSeconds) });
  if (delivery.includeBytes) out.png = await store.get(image.key);
  return out;
}
