import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { UsageError } from "./cli-args.js";
import { JobFailedError } from "./render-job.js";

/** Exit statuses of the unclip CLI (see EXIT_STATUS_HELP). */
export const EXIT = {
  OK: 0,
  /** The job or batch ended without success: FAILED, CANCELLED, or a batch with failed or cancelled items. */
  UNSUCCESSFUL: 1,
  /** The CLI was called wrongly: a bad flag or argument, an unreadable input file. */
  USAGE: 2,
  /** Something failed on this side: an image download, a file write, a stream that ended before its job did. */
  LOCAL: 3,
  /** 64 + the gRPC status code of a failed call, as grpcurl does (NOT_FOUND 5 → 69). */
  GRPC_BASE: 64,
  /** Ctrl-C (128 + SIGINT). */
  INTERRUPTED: 130,
} as const;

/** Whether an error is a gRPC status from a call (grpc-js ServiceError). */
export function isGrpcError(err: unknown): err is ServiceError {
  if (typeof err !== "object" || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === "number" && Number.isInteger(code) && code > 0 && code <= 16 && "metadata" in err;
}

/** The exit status for an error that ended a command. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  if (isGrpcError(err)) return EXIT.GRPC_BASE + err.code;
  if (err instanceof JobFailedError) return EXIT.UNSUCCESSFUL;
  return EXIT.LOCAL;
}

/** The one-line message for an error: `<details> (NOT_FOUND)` for gRPC errors, with the gateway's retry hint if any. */
export function describeError(err: unknown): string {
  if (isGrpcError(err)) {
    const retryAfter = Number(err.metadata?.get("retry-after-ms")[0]);
    const hint = Number.isFinite(retryAfter) && retryAfter > 0 ? `; retry in ${(retryAfter / 1000).toFixed(1)} s` : "";
    return `${err.details || err.message} (${grpcStatus[err.code]}${hint})`;
  }
  return err instanceof Error ? err.message : String(err);
}

export const EXIT_STATUS_HELP = `
Output:
  Results go to stdout, everything else (job ids, progress, hints) to stderr. With --json, stdout carries
  protobuf's canonical JSON only, as grpcurl prints it (lowerCamelCase field names, enums by name, 64-bit integers
  and bytes as strings, fields at their zero value left out): one document for a unary result (status, cancel, batch, batch-status, batch-cancel), one
  line per JobEvent for a stream (render, vary, edit, interpolate, transform, watch), the last being the terminal
  event (completed, failed or cancelled). Images are still written under -o. batch-results --json prints a JSON summary of the download.

Exit status:
  0        success
  1        the job or batch ended without success (failed, cancelled, or a batch with failed or cancelled items)
  2        usage error: a bad flag or argument, an unreadable input file
  3        a failure on this side: an image download or file write, a stream that ended before its job
  64+code  the gateway answered with gRPC status <code>, as grpcurl does: 67 INVALID_ARGUMENT, 69 NOT_FOUND,
           70 ALREADY_EXISTS, 72 RESOURCE_EXHAUSTED, 73 FAILED_PRECONDITION, 78 UNAVAILABLE, ...
  130      interrupted (Ctrl-C); the job or batch keeps running unless --cancel-on-interrupt

Environment:
  UNCLIP_GATEWAY   the gateway address when -a is not given (default 127.0.0.1:50051)
`;
