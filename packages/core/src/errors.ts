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
}

/** Maps any error to a FarmError: ours pass through; transport failures become UNAVAILABLE and retryable. */
export function toFarmError(err: unknown): FarmError {
  if (err instanceof FarmError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  // NATS and socket errors: the server or the object store is unreachable or timed out; retrying can help.
  if (
    e.name === "TimeoutError" ||
    e.name === "ConnectionError" ||
    e.name === "ClosedConnectionError" ||
    code === "ECONNREFUSED" ||
    code === "ECONNRESET" ||
    code === "ETIMEDOUT"
  ) {
    return new FarmError(status.UNAVAILABLE, `a backing service is unavailable: ${e.message}`, true, { cause: e });
  }
  // Anything else is a bug or an unexpected model failure: retrying on another worker may help.
  return new FarmError(status.INTERNAL, e.message, true, { cause: e });
}
