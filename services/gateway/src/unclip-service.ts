import {
  Metadata,
  status,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  create,
  toBinary,
  CreateVariationsRequestSchema,
  EditImageRequestSchema,
  GenerateRequestSchema,
  JobEventSchema,
  JobKind,
  JobState,
  QueuedSchema,
  type CancelBatchRequest,
  type CancelJobRequest,
  type GetBatchRequest,
  type GetJobRequest,
  type Job,
  type JobEvent,
  type ListBatchItemsRequest,
  type SubmitBatchRequest,
  type GenMessage,
  type Message,
  decodeFailure,
} from "@unclip/protocol";
import { FarmError, isTerminal, toFarmError, type FarmConnection, type Logger, type ObjectStore } from "@unclip/core";
import type { Counter } from "prom-client";
import type { BatchService } from "./batch-service.js";
import type { JobAdmission, Admission } from "./job-admission.js";
import { cancelJob } from "./job-cancel.js";
import { followJob, withImageUrls } from "./job-events.js";
import { prepareEdit, prepareGenerate, prepareVariations } from "./job-requests.js";
import { sha256, type RequestLedger } from "./request-ledger.js";
import { validateJobId, validateRequestId } from "./request-validation.js";

export interface ServiceMetrics {
  requests: Counter<"method" | "code">;
  jobs: Counter<"kind">;
}

/** farm.v1.UnclipService: validation and admission here; the work happens in the stage pools. */
export function unclipService(
  conn: FarmConnection,
  store: ObjectStore,
  admission: JobAdmission,
  requests: RequestLedger,
  batches: BatchService,
  log: Logger,
  metrics: ServiceMetrics,
): UntypedServiceImplementation {
  const jobs = admission.jobs;

  const fail = (method: string, err: unknown) => {
    const e = toFarmError(err);
    metrics.requests.inc({ method, code: status[e.code] });
    if (e.code === status.INTERNAL || e.code === status.UNAVAILABLE) log.error({ err, method }, "request failed");
    const metadata = new Metadata();
    // A standard hint that any gRPC client can read from the trailers (as in gRPC's retry-throttling design).
    if (e.retryAfterMs !== undefined) metadata.set("retry-after-ms", String(e.retryAfterMs));
    return { code: e.code, details: e.message, metadata };
  };

  /**
   * Validates, admits and streams a job until its terminal event. With a request_id, the first call claims the id
   * and admits the job; a retry with the same id and parameters follows that job instead (no new work).
   */
  const streamJob =
    <Req extends { requestId: string }>(method: string, schema: GenMessage<Req & Message>, prepare: (req: Req) => Promise<Admission>) =>
    async (call: ServerWritableStream<Req, JobEvent>) => {
      const closed = new AbortController();
      // A client that goes away stops following the job; the job itself runs on (GetJob, WatchJob).
      call.on("cancelled", () => closed.abort());
      try {
        const req = decoded(call.request);
        const requestId = validateRequestId(req.requestId);
        const a = await prepare(req);
        let jobId = admission.newJobId();
        const held = requestId
          ? await requests.claim(requestId, sha256(toBinary(schema, { ...req, requestId: "" } as Req & Message)), jobId)
          : undefined;
        if (held) jobId = held;
        const delivery = { urlTtlSeconds: a.params.urlTtlSeconds, includeBytes: a.params.includeBytes };
        await followJob(
          conn,
          jobs,
          store,
          jobId,
          delivery,
          (event) => write(call, event),
          closed.signal,
          async () => {
            if (held) {
              log.info({ jobId, requestId }, "request retried: following its job");
              return queuedEvent((await jobs.get(jobId))!, 0);
            }
            try {
              const { job, etaSeconds } = await admission.admit(jobId, a);
              metrics.jobs.inc({ kind: JobKind[a.kind]!.toLowerCase() });
              log.info({ jobId, kind: JobKind[a.kind], images: a.params.numImages, size: a.params.size, etaSeconds }, "job admitted");
              return queuedEvent(job, etaSeconds);
            } catch (err) {
              // Once the record exists the claim stays: a retry waits for it, or takes an orphan over after 10 s.
              if (requestId && !(await jobs.get(jobId))) await requests.release(requestId, jobId);
              throw err;
            }
          },
        );
        metrics.requests.inc({ method, code: "OK" });
        call.end();
      } catch (err) {
        call.emit("error", Object.assign(new Error(), fail(method, err)));
      }
    };

  const unary =
    <Req, Res>(method: string, handle: (req: Req) => Promise<Res>) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      Promise.resolve()
        .then(() => handle(decoded(call.request)))
        .then(
          (response) => {
            metrics.requests.inc({ method, code: "OK" });
            callback(null, response);
          },
          (err) => callback(fail(method, err)),
        );
    };

  const existingJob = async (jobId: string): Promise<Job> => {
    const job = await jobs.get(validateJobId(jobId));
    if (!job) throw FarmError.notFound(`job ${jobId} does not exist (or has expired)`);
    return job;
  };

  return {
    generate: streamJob("Generate", GenerateRequestSchema, prepareGenerate),
    createVariations: streamJob("CreateVariations", CreateVariationsRequestSchema, prepareVariations),
    editImage: streamJob("EditImage", EditImageRequestSchema, prepareEdit),

    watchJob: async (call: ServerWritableStream<GetJobRequest, JobEvent>) => {
      const closed = new AbortController();
      call.on("cancelled", () => closed.abort());
      try {
        const job = await existingJob(decoded(call.request).jobId);
        await followJob(conn, jobs, store, job.jobId, { urlTtlSeconds: 3600, includeBytes: false }, (e) => write(call, e), closed.signal);
        metrics.requests.inc({ method: "WatchJob", code: "OK" });
        call.end();
      } catch (err) {
        call.emit("error", Object.assign(new Error(), fail("WatchJob", err)));
      }
    },

    getJob: unary("GetJob", async (req: GetJobRequest) =>
      withImageUrls(store, await existingJob(req.jobId), { urlTtlSeconds: 3600, includeBytes: false }),
    ),

    cancelJob: unary("CancelJob", async (req: CancelJobRequest) => {
      const before = await existingJob(req.jobId);
      if (isTerminal(before)) {
        throw new FarmError(status.FAILED_PRECONDITION, `job ${before.jobId} already ended (${JobState[before.state]!.toLowerCase()})`);
      }
      const job = await cancelJob(conn, jobs, before.jobId, "cancelled by the client");
      if (!job || job.state !== JobState.CANCELLED) {
        throw new FarmError(status.FAILED_PRECONDITION, `job ${before.jobId} ended before it could be cancelled`);
      }
      log.info({ jobId: job.jobId }, "job cancelled");
      return job;
    }),

    submitBatch: unary("SubmitBatch", (req: SubmitBatchRequest) => batches.submit(req)),
    getBatch: unary("GetBatch", (req: GetBatchRequest) => batches.get(req)),
    listBatchItems: unary("ListBatchItems", (req: ListBatchItemsRequest) => batches.list(req)),
    cancelBatch: unary("CancelBatch", (req: CancelBatchRequest) => batches.cancel(req)),
  };
}

function decoded<Req>(request: Req): Req {
  const failure = decodeFailure(request);
  if (failure) throw FarmError.invalid(failure);
  return request;
}

/**
 * Writes one event, waiting for the stream to drain when its buffer is full. grpc-js never calls back (or drains) a
 * cancelled call, so a client gone away must end the wait too, or the job's subscription and watcher would leak.
 */
function write(call: ServerWritableStream<unknown, JobEvent>, event: JobEvent): Promise<void> {
  return new Promise((resolve) => {
    if (call.cancelled || call.destroyed || call.write(event)) return resolve();
    const done = () => {
      for (const e of ["drain", "cancelled", "close", "error"]) call.off(e, done);
      resolve();
    };
    for (const e of ["drain", "cancelled", "close", "error"]) call.once(e, done);
  });
}

function queuedEvent(job: Job, etaSeconds: number): JobEvent {
  return create(JobEventSchema, {
    jobId: job.jobId,
    atMs: BigInt(Date.now()),
    event: { case: "queued", value: create(QueuedSchema, { job, etaSeconds }) },
  });
}
