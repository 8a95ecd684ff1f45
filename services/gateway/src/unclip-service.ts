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
  InterpolateImagesRequestSchema,
  JobEventSchema,
  JobKind,
  JobState,
  QueuedSchema,
  TransformImageRequestSchema,
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
import { clientGone } from "./call-cancellation.js";
import { followJob, withImageUrls } from "./job-events.js";
import { prepareEdit, prepareGenerate, prepareInterpolate, prepareTransform, prepareVariations } from "./job-requests.js";
import { sha256, type RequestLedger } from "./request-ledger.js";
import { defaultUrlTtl, validateJobId, validateRequestId } from "./request-validation.js";
import type { Caller, TenantAuth } from "./tenant-auth.js";

export interface ServiceMetrics {
  requests: Counter<"method" | "code">;
  jobs: Counter<"kind">;
}

export interface ServiceAccess {
  /** Who may call, and whose jobs and batches each caller sees. */
  auth: TenantAuth;
  /** Longest presigned URL lifetime a request may ask for (UNCLIP_URL_TTL_MAX_S). */
  urlTtlMaxS: number;
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
  { auth, urlTtlMaxS }: ServiceAccess,
): UntypedServiceImplementation {
  const jobs = admission.jobs;
  const lookupDelivery = { urlTtlSeconds: defaultUrlTtl(urlTtlMaxS), includeBytes: false };

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
    <Req extends { requestId: string }>(
      method: string,
      schema: GenMessage<Req & Message>,
      prepare: (req: Req, urlTtlMaxS: number) => Promise<Admission>,
    ) =>
    async (call: ServerWritableStream<Req, JobEvent>) => {
      // A client that goes away stops following the job; the job itself runs on (GetJob, WatchJob).
      const closed = clientGone(call);
      try {
        const caller = auth.caller(call.metadata);
        const req = decoded(call.request);
        // Each tenant has its own request ids: one tenant's id never leads to another's job.
        const requestId = validateRequestId(req.requestId);
        const claimId = requestId && caller.tenant ? `${caller.tenant}:${requestId}` : requestId;
        const a = { ...(await prepare(req, urlTtlMaxS)), tenant: caller.tenant };
        let jobId = admission.newJobId();
        const held = claimId
          ? await requests.claim(claimId, sha256(toBinary(schema, { ...req, requestId: "" } as Req & Message)), jobId)
          : undefined;
        if (held) jobId = held;
        const delivery = { urlTtlSeconds: a.params.urlTtlSeconds, includeBytes: a.params.includeBytes };
        await followJob(
          conn,
          jobs,
          store,
          jobId,
          delivery,
          (event) => write(call, event, closed),
          closed,
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
              // Once the record exists the claim stays and a retry follows its job: a reconciler finishes an admission
              // that was cut short.
              if (claimId && !(await jobs.get(jobId))) await requests.release(claimId, jobId);
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
    <Req, Res>(method: string, handle: (req: Req, caller: Caller) => Promise<Res>) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      Promise.resolve()
        .then(() => {
          const caller = auth.caller(call.metadata);
          return handle(decoded(call.request), caller);
        })
        .then(
          (response) => {
            metrics.requests.inc({ method, code: "OK" });
            callback(null, response);
          },
          (err) => callback(fail(method, err)),
        );
    };

  /** Another tenant's job gets the very answer of a missing one: a job id alone (e.g. from an image URL) is not enough. */
  const existingJob = async (jobId: string, caller: Caller): Promise<Job> => {
    const job = await jobs.get(validateJobId(jobId));
    if (!job || !auth.owns(caller, job.tenant)) throw FarmError.notFound(`job ${jobId} does not exist (or has expired)`);
    return job;
  };

  return {
    generate: streamJob("Generate", GenerateRequestSchema, prepareGenerate),
    createVariations: streamJob("CreateVariations", CreateVariationsRequestSchema, prepareVariations),
    editImage: streamJob("EditImage", EditImageRequestSchema, prepareEdit),
    interpolateImages: streamJob("InterpolateImages", InterpolateImagesRequestSchema, prepareInterpolate),
    transformImage: streamJob("TransformImage", TransformImageRequestSchema, prepareTransform),

    watchJob: async (call: ServerWritableStream<GetJobRequest, JobEvent>) => {
      const closed = clientGone(call);
      try {
        const caller = auth.caller(call.metadata);
        const job = await existingJob(decoded(call.request).jobId, caller);
        await followJob(conn, jobs, store, job.jobId, lookupDelivery, (e) => write(call, e, closed), closed);
        metrics.requests.inc({ method: "WatchJob", code: "OK" });
        call.end();
      } catch (err) {
        call.emit("error", Object.assign(new Error(), fail("WatchJob", err)));
      }
    },

    getJob: unary("GetJob", async (req: GetJobRequest, caller) =>
      withImageUrls(store, await existingJob(req.jobId, caller), lookupDelivery),
    ),

    cancelJob: unary("CancelJob", async (req: CancelJobRequest, caller) => {
      const before = await existingJob(req.jobId, caller);
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

    submitBatch: unary("SubmitBatch", (req: SubmitBatchRequest, caller) => batches.submit(req, caller)),
    getBatch: unary("GetBatch", (req: GetBatchRequest, caller) => batches.get(req, caller)),
    listBatchItems: unary("ListBatchItems", (req: ListBatchItemsRequest, caller) => batches.list(req, caller)),
    cancelBatch: unary("CancelBatch", (req: CancelBatchRequest, caller) => batches.cancel(req, caller)),
  };
}

function decoded<Req>(request: Req): Req {
  const failure = decodeFailure(request);
  if (failure) throw FarmError.invalid(failure);
  return request;
}

/**
 * Writes one event, waiting for the stream to drain when its buffer is full. grpc-js never calls back (or drains) a
 * cancelled call, so a client gone away (`gone`) must end the wait too, or the job's subscription and watcher would
 * leak.
 */
function write(call: ServerWritableStream<unknown, JobEvent>, event: JobEvent, gone: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (gone.aborted || call.cancelled || call.destroyed || call.write(event)) return resolve();
    const done = () => {
      for (const e of ["drain", "cancelled", "close", "error"]) call.off(e, done);
      gone.removeEventListener("abort", done);
      resolve();
    };
    for (const e of ["drain", "cancelled", "close", "error"]) call.once(e, done);
    gone.addEventListener("abort", done, { once: true });
  });
}

function queuedEvent(job: Job, etaSeconds: number): JobEvent {
  return create(JobEventSchema, {
    jobId: job.jobId,
    atMs: BigInt(Date.now()),
    event: { case: "queued", value: create(QueuedSchema, { job, etaSeconds }) },
  });
}
