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
  JobEventSchema,
  JobKind,
  JobState,
  QueuedSchema,
  Stage,
  type CancelJobRequest,
  type CreateVariationsRequest,
  type EditImageRequest,
  type GenerateRequest,
  type GetJobRequest,
  type Job,
  type JobEvent,
  decodeFailure,
} from "@unclip/protocol";
import {
  CANCEL_SUBJECT,
  FarmError,
  isTerminal,
  publishEvent,
  toFarmError,
  type FarmConnection,
  type Logger,
  type ObjectStore,
} from "@unclip/core";
import type { Counter } from "prom-client";
import type { JobAdmission, Admission } from "./job-admission.js";
import { followJob, withImageUrls } from "./job-events.js";
import { upscaleRoute, validateCommon, validateImage, validateJobId, validatePrompt } from "./request-validation.js";

export interface ServiceMetrics {
  requests: Counter<"method" | "code">;
  jobs: Counter<"kind">;
}

/** farm.v1.UnclipService: validation and admission here; the work happens in the stage pools. */
export function unclipService(
  conn: FarmConnection,
  store: ObjectStore,
  admission: JobAdmission,
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

  /** Validates, admits and streams a job until its terminal event. */
  const streamJob =
    <Req>(method: string, prepare: (req: Req) => Promise<Admission>) =>
    async (call: ServerWritableStream<Req, JobEvent>) => {
      const closed = new AbortController();
      // A client that goes away stops following the job; the job itself runs on (GetJob, WatchJob).
      call.on("cancelled", () => closed.abort());
      try {
        const a = await prepare(decoded(call.request));
        const jobId = admission.newJobId();
        await followJob(
          conn,
          jobs,
          store,
          jobId,
          { urlTtlSeconds: a.params.urlTtlSeconds, includeBytes: a.params.includeBytes },
          (event) => write(call, event),
          closed.signal,
          async () => {
            const { job, etaSeconds } = await admission.admit(jobId, a);
            metrics.jobs.inc({ kind: JobKind[a.kind]!.toLowerCase() });
            log.info({ jobId, kind: JobKind[a.kind], images: a.params.numImages, size: a.params.size, etaSeconds }, "job admitted");
            return create(JobEventSchema, {
              jobId,
              atMs: BigInt(Date.now()),
              event: { case: "queued", value: create(QueuedSchema, { job, etaSeconds }) },
            });
          },
        );
        metrics.requests.inc({ method, code: "OK" });
        call.end();
      } catch (err) {
        call.emit("error", Object.assign(new Error(), fail(method, err)));
      }
    };

  const unary =
    <Req>(method: string, handle: (req: Req) => Promise<Job>) =>
    (call: ServerUnaryCall<Req, Job>, callback: sendUnaryData<Job>) => {
      Promise.resolve()
        .then(() => handle(decoded(call.request)))
        .then(
          (job) => {
            metrics.requests.inc({ method, code: "OK" });
            callback(null, job);
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
    generate: streamJob("Generate", async (req: GenerateRequest) => {
      const prompt = validatePrompt(req.prompt);
      const params = validateCommon(req);
      return { kind: JobKind.GENERATE, prompt, params, route: [Stage.PRIOR, Stage.DECODER, ...upscaleRoute(params.size)] };
    }),

    createVariations: streamJob("CreateVariations", async (req: CreateVariationsRequest) => {
      const params = validateCommon(req);
      await validateImage(req.image, "image");
      return {
        kind: JobKind.VARIATIONS,
        prompt: "",
        params,
        route: [Stage.IMAGE_ENCODE, Stage.DECODER, ...upscaleRoute(params.size)],
        source: req.image,
      };
    }),

    editImage: streamJob("EditImage", async (req: EditImageRequest) => {
      const prompt = validatePrompt(req.prompt);
      const params = validateCommon(req);
      const image = await validateImage(req.image, "image");
      const mask = await validateImage(req.mask, "mask");
      if (Math.abs(image.width / image.height - mask.width / mask.height) > 0.01) {
        throw FarmError.invalid(
          `mask is ${mask.width}x${mask.height} but image is ${image.width}x${image.height}: they need the same aspect ratio`,
        );
      }
      return {
        kind: JobKind.EDIT,
        prompt,
        params,
        route: [Stage.PRIOR, Stage.DECODER, ...upscaleRoute(params.size)],
        source: req.image,
        mask: req.mask,
      };
    }),

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
      const job = await jobs.update(before.jobId, (j) => {
        if (isTerminal(j)) return undefined;
        j.state = JobState.CANCELLED;
        j.error = "cancelled by the client";
        return j;
      });
      if (!job || job.state !== JobState.CANCELLED) {
        throw new FarmError(status.FAILED_PRECONDITION, `job ${before.jobId} ended before it could be cancelled`);
      }
      conn.nc.publish(CANCEL_SUBJECT, job.jobId);
      publishEvent(conn.nc, job.jobId, { case: "cancelled", value: job });
      log.info({ jobId: job.jobId }, "job cancelled");
      return job;
    }),
  };
}

function decoded<Req>(request: Req): Req {
  const failure = decodeFailure(request);
  if (failure) throw FarmError.invalid(failure);
  return request;
}

function write(call: ServerWritableStream<unknown, JobEvent>, event: JobEvent): Promise<void> {
  return new Promise((resolve) => {
    if (call.write(event)) resolve();
    else call.once("drain", resolve);
  });
}
