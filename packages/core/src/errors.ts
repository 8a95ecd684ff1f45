import { status } from "@grpc/grpc-js";

export { status as GrpcStatus };

/**
 * An error that carries a gRPC status code and says whether a retry can help. Workers `term()` a task whose
 * error is not retryable (and fail its job with the message); retryable errors are `nak()`ed with a delay.
 */
export class FarmError extends Error {
  override name = "FarmError";
  constructor(
    readonly code: status,
    message: string,
    readonly retryable = false,
    options?: ErrorOptions & { jobId?: string; retryAfterMs?: number },
  ) {
    super(message, options);
    this.jobId = options?.jobId;
    this.retryAfterMs = options?.retryAfterMs;
  }
  readonly jobId: string | undefined;
  /** When a retry may succeed (ms from now): sent to gRPC clients as the `retry-after-ms` trailer. */
  readonly retryAfterMs: number | undefined;

  static invalid(message: string): FarmError {
    return new FarmError(status.INVALID_ARGUMENT, message);
  }
  static notFound(message: string): FarmError {
    return new FarmError(status.NOT_FOUND, message);
  }
  /** A backing service (S3, NATS) failed or did not answer in time: another attempt later can succeed. */
  static unavailable(message: string, cause?: unknown): FarmError {
    return new FarmError(status.UNAVAILABLE, message, true, { cause });
  }
}

/** Socket errors of a server that is down, restarting, unreachable or cut off mid-request. */
const TRANSIENT_SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
]);

/** S3 error codes (minio's S3Error.code) of an object store that is overloaded or failing inside. */
const TRANSIENT_S3_CODES = new Set(["SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed"]);

/**
 * The one place that maps any error to a gRPC status and a retry decision, for the gateway's answers and for the
 * workers' retry policy alike. Ours pass through; everything else is classified by kind, one case per line.
 */
export function toFarmError(err: unknown): FarmError {
  if (err instanceof FarmError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  // An aborted call carries the reason it was aborted with (a deadline, a cancellation, a shutdown).
  if (e.name === "AbortError" && e.cause !== undefined && e.cause !== err) return toFarmError(e.cause);
  // A NATS request that failed says why in its cause (no responders, a timeout).
  if (e.name === "RequestError" && e.cause instanceof Error) return toFarmError(e.cause);
  // NATS: no answer in time, no server, no JetStream (503), or a connection that closed; retrying once it is back
  // can help.
  if (
    e.name === "TimeoutError" ||
    e.name === "ConnectionError" ||
    e.name === "ClosedConnectionError" ||
    e.name === "NoRespondersError" ||
    e.name === "DrainingConnectionError" ||
    e.name === "JetStreamNotEnabled" ||
    (e.name === "JetStreamApiError" && (e as { status?: number }).status === 503) ||
    (e.name === "JetStreamStatusError" && code === 503)
  ) {
    return FarmError.unavailable(`a backing service is unavailable: ${e.message}`, e);
  }
  // Sockets (S3 over HTTP, NATS over TCP): the server is down, unreachable or cut the connection.
  if (typeof code === "string" && TRANSIENT_SOCKET_CODES.has(code)) {
    return FarmError.unavailable(`a backing service is unavailable: ${e.message}`, e);
  }
  // The object store answered, but with an error of its own that says "try later".
  if (e.name === "S3Error" && typeof code === "string" && TRANSIENT_S3_CODES.has(code)) {
    return FarmError.unavailable(`the object store failed (${code}): ${e.message}`, e);
  }
  // An object the task needs is gone (its job's inputs expired or were removed): no retry brings it back.
  if (e.name === "S3Error" && (code === "NoSuchKey" || code === "NotFound")) {
    return new FarmError(status.NOT_FOUND, `an input of the job is missing from the object store: ${e.message}`, false, { cause: e });
  }
  // Wrong object store credentials or bucket: a configuration error that an operator fixes; retry until then.
  if (e.name === "S3Error") return new FarmError(status.INTERNAL, `the object store refused a request: ${e.message}`, true, { cause: e });
  // Anything else is a bug or an unexpected model failure: retrying on another worker may help.
  return new FarmError(status.INTERNAL, e.message, true, { cause: e });
}
