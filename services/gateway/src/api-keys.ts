import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, unwatchFile, watchFile, type Stats } from "node:fs";
import type { Logger } from "@unclip/core";
import { MAX_IMAGES } from "./request-validation.js";

/** A tenant as the keys file names it. */
export interface Tenant {
  readonly name: string;
  /** Most images of the tenant's jobs not yet finished (its own quota; undefined = the farm's default). */
  readonly maxQueuedImages: number | undefined;
}

interface Entry extends Tenant {
  readonly digest: Buffer;
}

/** A keys file that cannot be used; the message names the file and the bad entry. */
export class ApiKeysError extends Error {
  override name = "ApiKeysError";
}

const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const ENTRY_FIELDS = new Set(["name", "key_sha256", "max_queued_images"]);

/**
 * Parses a keys file: `{"tenants":[{"name":"alpha","key_sha256":"<hex>","max_queued_images":64}]}`. Only the
 * SHA-256 of each key is stored, so the file itself grants nothing. Unknown fields are refused, as a misspelt
 * `max_queued_images` would otherwise silently lift a quota.
 */
export function parseApiKeys(text: string, source: string): Entry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ApiKeysError(`${source} is not JSON: ${(err as Error).message}`);
  }
  const tenants = (doc as { tenants?: unknown } | null)?.tenants;
  if (typeof doc !== "object" || doc === null || Array.isArray(doc) || !Array.isArray(tenants)) {
    throw new ApiKeysError(`${source} must be an object {"tenants":[{"name":…,"key_sha256":…}, …]}`);
  }
  const names = new Set<string>();
  const digests = new Set<string>();
  return tenants.map((raw: unknown, i) => {
    const where = `${source}: tenants[${i}]`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ApiKeysError(`${where} is not an object`);
    const e = raw as Record<string, unknown>;
    const unknown = Object.keys(e).filter((k) => !ENTRY_FIELDS.has(k));
    if (unknown.length > 0) {
      throw new ApiKeysError(`${where} has unknown field(s) ${unknown.join(", ")}; known: ${[...ENTRY_FIELDS].join(", ")}`);
    }
    const { name, key_sha256: hex, max_queued_images: max } = e;
    if (typeof name !== "string" || !TENANT_NAME.test(name)) {
      throw new ApiKeysError(`${where}: name ${JSON.stringify(name)} must be 1 to 63 characters of a-z 0-9 _ - (starting a-z 0-9)`);
    }
    if (names.has(name)) throw new ApiKeysError(`${where}: tenant ${name} appears twice`);
    names.add(name);
    if (typeof hex !== "string" || !SHA256_HEX.test(hex.toLowerCase())) {
      throw new ApiKeysError(`${where} (${name}): key_sha256 must be the 64 hex digits of the key's SHA-256, not the key itself`);
    }
    if (digests.has(hex.toLowerCase())) throw new ApiKeysError(`${where} (${name}): key_sha256 is another tenant's key too`);
    digests.add(hex.toLowerCase());
    if (max !== undefined && (typeof max !== "number" || !Number.isInteger(max) || max < MAX_IMAGES || max > 1_000_000)) {
      // Below one job's largest image count a tenant could never run such a job (and its batches would stall).
      throw new ApiKeysError(
        `${where} (${name}): max_queued_images ${JSON.stringify(max)} must be a whole number from ${MAX_IMAGES} to 1000000`,
      );
    }
    return { name, maxQueuedImages: max as number | undefined, digest: Buffer.from(hex.toLowerCase(), "hex") };
  });
}

/**
 * The tenants of UNCLIP_API_KEYS_FILE, reloaded when the file changes. The file is polled (fs.watchFile) rather than
 * watched with inotify, because a Kubernetes Secret volume replaces it through a symlink swap that an inotify watch
 * on the old file never sees. A change is read after a short quiet time so that a half-written file is not read; a
 * file that cannot be used keeps the last good set and logs an error.
 */
export class ApiKeys {
  private entries: Entry[];
  private debounce: NodeJS.Timeout | undefined;
  private readonly onChange = (now: Stats, before: Stats) => {
    if (now.mtimeMs === before.mtimeMs && now.ino === before.ino && now.size === before.size) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.reload(), this.opts.debounceMs);
  };

  /** Reads the file (throws ApiKeysError when it cannot be used) and starts watching it. */
  constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly opts: { pollMs: number; debounceMs: number } = { pollMs: 1_000, debounceMs: 200 },
  ) {
    this.entries = this.read();
    watchFile(path, { interval: opts.pollMs, persistent: false }, this.onChange);
  }

  /** Tenant names, in file order. */
  get tenants(): readonly Tenant[] {
    return this.entries.map(({ name, maxQueuedImages }) => ({ name, maxQueuedImages }));
  }

  tenant(name: string): Tenant | undefined {
    return this.entries.find((e) => e.name === name);
  }

  /**
   * The tenant whose key this is. Every entry is compared, with crypto.timingSafeEqual on the SHA-256 digests, so
   * neither the time taken nor an early exit tells how close a guess came or which entry matched.
   */
  lookup(key: string): Tenant | undefined {
    const digest = createHash("sha256").update(key, "utf8").digest();
    let found: Entry | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(digest, e.digest) && !found) found = e;
    }
    return found && { name: found.name, maxQueuedImages: found.maxQueuedImages };
  }

  /** Reads the file again; on failure keeps the current set. */
  private reload(): void {
    try {
      this.entries = this.read();
      this.log.info({ file: this.path, tenants: this.entries.map((e) => e.name) }, "API keys reloaded");
    } catch (err) {
      this.log.error({ file: this.path, err: (err as Error).message }, "API keys file not reloaded: keeping the last good set");
    }
  }

  close(): void {
    clearTimeout(this.debounce);
    unwatchFile(this.path, this.onChange);
  }

  private read(): Entry[] {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (err) {
      throw new ApiKeysError(`UNCLIP_API_KEYS_FILE ${this.path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    return parseApiKeys(text, `UNCLIP_API_KEYS_FILE ${this.path}`);
  }
}
