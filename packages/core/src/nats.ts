import { readFile } from "node:fs/promises";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { Lane, type Pool } from "@unclip/protocol";

/** Work-queue stream that holds every stage task; one subject per pool. */
export const TASK_STREAM = "FARM_TASKS";
export const JOB_BUCKET = "farm_jobs";
/**
 * Stream that keeps JetStream's max-deliveries advisories for the task stream, so that a task given up while no farm
 * process was connected still fails its job when one comes back (dead-letters.ts).
 */
export const DEAD_LETTER_STREAM = "FARM_DEAD_LETTERS";
/** Durable consumer of DEAD_LETTER_STREAM shared by every farm process. */
export const DEAD_LETTER_CONSUMER = "farm-dead-letters";
/**
 * Deadline of every NATS request the farm makes (JetStream API calls, publishes with acks, KV reads and writes, acks
 * with acks), in ms: a server that stops answering fails the call with a retryable TimeoutError instead of holding it.
 */
export const NATS_REQUEST_TIMEOUT_MS = 5_000;

/** Each pool has one subject (and durable consumer) per lane; batch items travel apart from interactive jobs. */
export const taskSubject = (pool: Pool, lane: Lane = Lane.INTERACTIVE): string =>
  lane === Lane.BATCH ? `farm.tasks.${pool}.batch` : `farm.tasks.${pool}`;
export const eventSubject = (jobId: string): string => `farm.events.${jobId}`;
/** Core-NATS broadcast of a cancelled job id, so workers abort its in-flight tasks at once. */
export const CANCEL_SUBJECT = "farm.control.cancel";
/** Prefix of the subjects farm.stats.<pool> on which workers report batches and liveness (WorkerReport). */
export const STATS_SUBJECT_PREFIX = "farm.stats";
export const poolConsumer = (pool: Pool, lane: Lane = Lane.INTERACTIVE): string =>
  lane === Lane.BATCH ? `pool-${pool}-batch` : `pool-${pool}`;
export const LANES = [Lane.INTERACTIVE, Lane.BATCH] as const;

export interface FarmConnection {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly jobs: KV;
  /** Replicas of the farm's streams and buckets on this server or cluster. */
  readonly replicas: number;
}

export interface ConsumerSettings {
  /** How long a delivered task may go without ack or heartbeat before JetStream redelivers it. */
  ackWaitMs: number;
  /** Deliveries before a task is given up (its job then fails). */
  maxDeliver: number;
}

/** Where NATS is and how to log in; a bare URL string means no credentials and one replica. */
export interface NatsSettings {
  readonly url: string;
  /** Replicas of the farm's streams and KV buckets (UNCLIP_NATS_REPLICAS: 1 on one server, 3 on a cluster). */
  readonly replicas?: number;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** A .creds file (JWT and nkey seed) for decentralised auth. */
  readonly credsFile?: string;
  /** TLS to the server: PEM roots to trust (else the system's) and a client certificate for servers that verify one. */
  readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
}

const DEFAULT_JOB_TTL_S = 7 * 24 * 3600;

/**
 * Connects and makes sure the task stream and the job bucket exist. Only the process that owns a setting enforces it
 * on an existing stream or bucket (`owner`: the gateway, which is configured with the job TTL), so the TTL does not
 * depend on which process started first and a worker with defaults cannot undo it.
 */
export async function connectFarm(
  nats: string | NatsSettings,
  name: string,
  opts: { jobTtlSeconds?: number; owner?: boolean } = {},
): Promise<FarmConnection> {
  const settings: NatsSettings = typeof nats === "string" ? { url: nats } : nats;
  const authenticator = settings.credsFile ? credsAuthenticator(await readFile(settings.credsFile)) : undefined;
  const nc = await connect({
    servers: settings.url,
    name,
    maxReconnectAttempts: -1,
    user: settings.user,
    pass: settings.pass,
    token: settings.token,
    authenticator,
    tls: settings.tls,
  });
  const jsm = await jetstreamManager(nc, { timeout: NATS_REQUEST_TIMEOUT_MS });
  const replicas = settings.replicas ?? 1;
  await ensureTaskStream(jsm, replicas);
  await ensureDeadLetterStream(jsm, replicas);
  const jobs = await openBucket(nc, jsm, JOB_BUCKET, {
    ttlSeconds: opts.jobTtlSeconds ?? DEFAULT_JOB_TTL_S,
    replicas,
    enforce: opts.owner,
  });
  return { nc, js: jetstream(nc, { timeout: NATS_REQUEST_TIMEOUT_MS }), jsm, jobs, replicas };
}

/**
 * Opens a KV bucket of the farm's records, creating it when missing. With `enforce`, an existing bucket's TTL and
 * replicas are brought to these values (KV create only opens an existing bucket, keeping what its creator chose).
 */
export async function openBucket(
  nc: NatsConnection,
  jsm: JetStreamManager,
  name: string,
  opts: { ttlSeconds: number; replicas: number; enforce?: boolean },
): Promise<KV> {
  const kv = await new Kvm(jetstream(nc, { timeout: NATS_REQUEST_TIMEOUT_MS })).create(name, {
    history: 1,
    ttl: opts.ttlSeconds * 1000,
    storage: StorageType.File,
    replicas: opts.replicas,
  });
  if (opts.enforce) {
    const stream = `KV_${name}`;
    const config = (await jsm.streams.info(stream)).config;
    const maxAge = opts.ttlSeconds * 1_000_000_000;
    if (config.max_age !== maxAge || config.num_replicas !== opts.replicas) {
      await jsm.streams.update(stream, { ...config, max_age: maxAge, num_replicas: opts.replicas });
    }
  }
  return kv;
}

async function ensureTaskStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  const config = {
    name: TASK_STREAM,
    num_replicas: replicas,
    subjects: ["farm.tasks.>"],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    // A redelivered task republishes its successor with the same id; the window absorbs that duplicate.
    duplicate_window: 10 * 60 * 1_000_000_000,
  };
  try {
    await jsm.streams.info(TASK_STREAM);
    await jsm.streams.update(TASK_STREAM, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config).catch(async (e) => {
      // Another process created it between our info and add.
      if (!String(e).includes("already in use")) throw e;
    });
  }
}

/**
 * The dead-letter stream: limits retention (kept for a week, at most 100k advisories), so handled advisories stay
 * readable for an operator while the shared consumer moves past them.
 */
async function ensureDeadLetterStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  const config = {
    name: DEAD_LETTER_STREAM,
    num_replicas: replicas,
    subjects: [`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${TASK_STREAM}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: 7 * 24 * 3600 * 1_000_000_000,
    max_msgs: 100_000,
  };
  await jsm.streams.add(config).catch(async (e) => {
    // Every farm process runs this at start; the first one creates the stream.
    if (!/already in use|already exists/i.test(String(e))) throw e;
    await jsm.streams.update(DEAD_LETTER_STREAM, config);
  });
}

/** Creates or updates the durable pull consumer that a pool's workers share for one lane. */
export async function ensurePoolConsumer(
  jsm: JetStreamManager,
  pool: Pool,
  settings: ConsumerSettings,
  lane: Lane = Lane.INTERACTIVE,
): Promise<string> {
  const name = poolConsumer(pool, lane);
  const config = {
    durable_name: name,
    filter_subject: taskSubject(pool, lane),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: settings.ackWaitMs * 1_000_000,
    max_deliver: settings.maxDeliver,
    max_ack_pending: 10_000,
  };
  try {
    const current = (await jsm.consumers.info(TASK_STREAM, name)).config;
    // Update only on a real change: every worker of the pool runs this at start, and an update is not free for the
    // consumer's in-flight deliveries.
    if (
      current.ack_wait !== config.ack_wait ||
      current.max_deliver !== config.max_deliver ||
      current.filter_subject !== config.filter_subject
    ) {
      await jsm.consumers.update(TASK_STREAM, name, config);
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(TASK_STREAM, config).catch(async (e) => {
      // Another worker of the pool created it first.
      if (!/already in use|already exists/i.test(String(e))) throw e;
    });
  }
  return name;
}

function isNotFound(err: unknown): boolean {
  return /not found/i.test(String((err as Error)?.message ?? err));
}

/**
 * Tasks waiting (not yet delivered) plus delivered but unacknowledged, of one lane of a pool, or of both lanes when
 * `lane` is omitted: the autoscaling signal.
 */
export async function poolBacklog(jsm: JetStreamManager, pool: Pool, lane?: Lane): Promise<{ pending: number; inFlight: number }> {
  const lanes = lane === undefined ? LANES : [lane];
  const parts = await Promise.all(
    lanes.map(async (l) => {
      try {
        const info = await jsm.consumers.info(TASK_STREAM, poolConsumer(pool, l));
        return { pending: info.num_pending, inFlight: info.num_ack_pending };
      } catch (err) {
        if (isNotFound(err)) return { pending: 0, inFlight: 0 };
        throw err;
      }
    }),
  );
  return parts.reduce((a, b) => ({ pending: a.pending + b.pending, inFlight: a.inFlight + b.inFlight }));
}
