import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  type Client,
  type ClientReadableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  create,
  grpcServiceDefinition,
  CancelJobRequestSchema,
  GetJobRequestSchema,
  UnclipService,
  type CreateVariationsRequest,
  type EditImageRequest,
  type GenerateRequest,
  type Job,
  type JobEvent,
} from "@unclip/protocol";

type Unary<Req, Res> = (req: Req, meta: Metadata, cb: (err: ServiceError | null, res: Res) => void) => void;
type Streaming<Req> = (req: Req) => ClientReadableStream<JobEvent>;

interface RawClient extends Client {
  generate: Streaming<GenerateRequest>;
  createVariations: Streaming<CreateVariationsRequest>;
  editImage: Streaming<EditImageRequest>;
  watchJob: Streaming<{ jobId: string }>;
  getJob: Unary<unknown, Job>;
  cancelJob: Unary<unknown, Job>;
}

const RawClient = makeGenericClientConstructor(grpcServiceDefinition(UnclipService), "UnclipService") as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options: Record<string, unknown>,
) => RawClient;

/** A typed client of farm.v1.UnclipService over grpc-js. */
export class UnclipClient {
  private readonly raw: RawClient;

  constructor(address: string) {
    // Image events may carry PNG bytes (a 1024 px PNG is a few MiB).
    this.raw = new RawClient(address, credentials.createInsecure(), { "grpc.max_receive_message_length": 64 * 1024 * 1024 });
  }

  generate(req: GenerateRequest): AsyncIterable<JobEvent> & { cancel(): void } {
    return stream(this.raw.generate(req));
  }

  createVariations(req: CreateVariationsRequest): AsyncIterable<JobEvent> & { cancel(): void } {
    return stream(this.raw.createVariations(req));
  }

  editImage(req: EditImageRequest): AsyncIterable<JobEvent> & { cancel(): void } {
    return stream(this.raw.editImage(req));
  }

  watchJob(jobId: string): AsyncIterable<JobEvent> & { cancel(): void } {
    return stream(this.raw.watchJob(create(GetJobRequestSchema, { jobId })));
  }

  getJob(jobId: string): Promise<Job> {
    return unary(this.raw.getJob.bind(this.raw), create(GetJobRequestSchema, { jobId }));
  }

  cancelJob(jobId: string): Promise<Job> {
    return unary(this.raw.cancelJob.bind(this.raw), create(CancelJobRequestSchema, { jobId }));
  }

  close(): void {
    this.raw.close();
  }
}

function stream(call: ClientReadableStream<JobEvent>): AsyncIterable<JobEvent> & { cancel(): void } {
  return { [Symbol.asyncIterator]: () => call[Symbol.asyncIterator]() as AsyncIterator<JobEvent>, cancel: () => call.cancel() };
}

function unary<Req, Res>(method: Unary<Req, Res>, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => method(req, new Metadata(), (err, res) => (err ? reject(err) : resolve(res))));
}
