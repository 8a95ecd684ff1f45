import {
  credentials,
  InterceptingCall,
  makeGenericClientConstructor,
  Metadata,
  type Interceptor,
  type Client,
  type CallOptions,
  type ChannelCredentials,
  type ClientReadableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  create,
  grpcServiceDefinition,
  CancelBatchRequestSchema,
  CancelJobRequestSchema,
  GetBatchRequestSchema,
  GetJobRequestSchema,
  ListBatchItemsRequestSchema,
  UnclipService,
  type Batch,
  type BatchItemResult,
  type CreateVariationsRequest,
  type EditImageRequest,
  type GenerateRequest,
  type InterpolateImagesRequest,
  type Job,
  type JobEvent,
  type ListBatchItemsResponse,
  type SubmitBatchRequest,
  type TransformImageRequest,
} from "@unclip/protocol";

type Unary<Req, Res> = (req: Req, meta: Metadata, options: CallOptions, cb: (err: ServiceError | null, res: Res) => void) => void;
type Streaming<Req> = (req: Req) => ClientReadableStream<JobEvent>;

interface RawClient extends Client {
  generate: Streaming<GenerateRequest>;
  createVariations: Streaming<CreateVariationsRequest>;
  editImage: Streaming<EditImageRequest>;
  interpolateImages: Streaming<InterpolateImagesRequest>;
  transformImage: Streaming<TransformImageRequest>;
  watchJob: Streaming<{ jobId: string }>;
  getJob: Unary<unknown, Job>;
  cancelJob: Unary<unknown, Job>;
  submitBatch: Unary<SubmitBatchRequest, Batch>;
  getBatch: Unary<unknown, Batch>;
  listBatchItems: Unary<unknown, ListBatchItemsResponse>;
  cancelBatch: Unary<unknown, Batch>;
}

/** Options of one unary call. */
export interface UnaryOptions {
  /** Give up after this many milliseconds (DEADLINE_EXCEEDED); default: no deadline. */
  timeoutMs?: number;
}

const RawClient = makeGenericClientConstructor(grpcServiceDefinition(UnclipService), "UnclipService") as unknown as new (
  address: string,
  creds: ChannelCredentials,
  options: Record<string, unknown>,
) => RawClient;

/** How to reach the gateway: plaintext (the default) or TLS. */
export interface ConnectionOptions {
  /** Connect with TLS; implied by any of the PEM fields. */
  tls?: boolean;
  /** PEM root certificates to trust instead of the system's (grpcurl's -cacert). */
  caCert?: Buffer;
  /** PEM client certificate chain and private key, for servers that ask for one (mutual TLS). */
  cert?: Buffer;
  key?: Buffer;
  /** API key sent on every call as `authorization: Bearer <key>` (a farm with API keys needs one). */
  apiKey?: string;
}

/** A typed client of farm.v1.UnclipService over grpc-js. */
export class UnclipClient {
  private readonly raw: RawClient;

  constructor(address: string, connection: ConnectionOptions = {}) {
    const { tls, caCert, cert, key, apiKey } = connection;
    const creds =
      tls || caCert || cert || key ? credentials.createSsl(caCert ?? null, key ?? null, cert ?? null) : credentials.createInsecure();
    // Image events may carry PNG bytes (a 1024 px PNG is a few MiB).
    this.raw = new RawClient(address, creds, {
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
      interceptors: apiKey ? [bearer(apiKey)] : [],
    });
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

  interpolateImages(req: InterpolateImagesRequest): AsyncIterable<JobEvent> & { cancel(): void } {
    return stream(this.raw.interpolateImages(req));
  }

  transformImage(req: TransformImageRequest): AsyncIterable<JobEvent> & { cancel(): void } {
    return stream(this.raw.transformImage(req));
  }

  watchJob(jobId: string): AsyncIterable<JobEvent> & { cancel(): void } {
    return stream(this.raw.watchJob(create(GetJobRequestSchema, { jobId })));
  }

  getJob(jobId: string, opts?: UnaryOptions): Promise<Job> {
    return unary(this.raw.getJob.bind(this.raw), create(GetJobRequestSchema, { jobId }), opts);
  }

  cancelJob(jobId: string, opts?: UnaryOptions): Promise<Job> {
    return unary(this.raw.cancelJob.bind(this.raw), create(CancelJobRequestSchema, { jobId }), opts);
  }

  /** Submits a batch; resubmitting the same batch_id with the same content returns the existing batch. */
  submitBatch(req: SubmitBatchRequest, opts?: UnaryOptions): Promise<Batch> {
    return unary(this.raw.submitBatch.bind(this.raw), req, opts);
  }

  getBatch(batchId: string, opts?: UnaryOptions): Promise<Batch> {
    return unary(this.raw.getBatch.bind(this.raw), create(GetBatchRequestSchema, { batchId }), opts);
  }

  /** One page of a batch's items in submission order; pass the previous page's nextPageToken for the next. */
  listBatchItems(
    batchId: string,
    page: { pageSize?: number; pageToken?: string } = {},
    opts?: UnaryOptions,
  ): Promise<ListBatchItemsResponse> {
    return unary(this.raw.listBatchItems.bind(this.raw), create(ListBatchItemsRequestSchema, { batchId, ...page }), opts);
  }

  /** Every item of a batch in submission order, fetched a page (default 1000 items) at a time. */
  async *batchItems(batchId: string, pageSize = 1000, opts?: UnaryOptions): AsyncGenerator<BatchItemResult> {
    let pageToken = "";
    do {
      const page = await this.listBatchItems(batchId, { pageSize, pageToken }, opts);
      yield* page.items;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  cancelBatch(batchId: string, opts?: UnaryOptions): Promise<Batch> {
    return unary(this.raw.cancelBatch.bind(this.raw), create(CancelBatchRequestSchema, { batchId }), opts);
  }

  close(): void {
    this.raw.close();
  }
}

/**
 * Adds the key to every call's metadata. An interceptor rather than call credentials: grpc-js sends call credentials
 * only over TLS, and a farm on a private network may well run plaintext with keys.
 */
function bearer(apiKey: string): Interceptor {
  return (options, next) =>
    new InterceptingCall(next(options), {
      start(metadata, listener, start) {
        metadata.set("authorization", `Bearer ${apiKey}`);
        start(metadata, listener);
      },
    });
}

function stream(call: ClientReadableStream<JobEvent>): AsyncIterable<JobEvent> & { cancel(): void } {
  return { [Symbol.asyncIterator]: () => call[Symbol.asyncIterator]() as AsyncIterator<JobEvent>, cancel: () => call.cancel() };
}

function unary<Req, Res>(method: Unary<Req, Res>, req: Req, opts: UnaryOptions = {}): Promise<Res> {
  const options: CallOptions = opts.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
  return new Promise((resolve, reject) => method(req, new Metadata(), options, (err, res) => (err ? reject(err) : resolve(res))));
}
