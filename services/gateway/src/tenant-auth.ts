import type { Metadata } from "@grpc/grpc-js";
import { FarmError, GrpcStatus } from "@unclip/core";
import type { ApiKeys } from "./api-keys.js";

/** Who is calling: a tenant's name, or "" on an open farm (no UNCLIP_API_KEYS_FILE). */
export interface Caller {
  readonly tenant: string;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Resolves the caller of every farm.v1.UnclipService call from its `authorization: Bearer <key>` metadata. Health
 * and reflection are separate services and never pass through here, so probes need no key.
 */
export class TenantAuth {
  constructor(private readonly keys: ApiKeys | undefined) {}

  /** Throws UNAUTHENTICATED without a valid key on a farm with keys; an open farm lets everyone in as tenant "". */
  caller(metadata: Metadata): Caller {
    if (!this.keys) return { tenant: "" };
    const values = metadata.get("authorization");
    if (values.length === 0) {
      throw new FarmError(GrpcStatus.UNAUTHENTICATED, "this farm needs an API key: send the metadata authorization: Bearer <key>");
    }
    const m = values.length === 1 && typeof values[0] === "string" ? BEARER.exec(values[0]) : null;
    if (!m) throw new FarmError(GrpcStatus.UNAUTHENTICATED, "the authorization metadata must be one value of the form Bearer <key>");
    const tenant = this.keys.lookup(m[1]!);
    // The key itself is never echoed: error messages end up in client logs.
    if (!tenant) throw new FarmError(GrpcStatus.UNAUTHENTICATED, "the API key is not valid (unknown or revoked)");
    return { tenant: tenant.name };
  }

  /** Whether the caller may see a job or batch of `owner`: its own, or anything on an open farm. */
  owns(caller: Caller, owner: string): boolean {
    return !this.keys || caller.tenant === owner;
  }
}
