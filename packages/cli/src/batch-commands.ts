import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import type { Command } from "commander";
import { create, toJson, BatchSchema, BatchState, SubmitBatchRequestSchema, type Batch, type SubmitBatchRequest } from "@unclip/protocol";
import { imageFlags, imageSettings, jsonOption, UsageError, type ImageFlags } from "./cli-args.js";
import { BATCH_ID, defaultBatchId, isJsonlFile, itemsToJsonl, manifestBatchId, MAX_INLINE_ITEMS, readBatchFile } from "./batch-file.js";
import { BatchProgress, batchStateName, formatEta } from "./batch-progress.js";
import { downloadBatchResults } from "./batch-download.js";
import type { UnclipClient } from "./client.js";
import { withClient, type Gateway } from "./command-context.js";
import { EXIT } from "./exit-codes.js";
import { printReply, registerReplyCommand } from "./reply-command.js";

type BatchFlags = ImageFlags & {
  batchId?: string;
  manifestKey?: string;
  printItems?: boolean;
  json?: boolean;
};

/** Flags that shape the items of a prompts file; a JSONL file carries its own. */
const PROMPT_FLAGS = ["images", "size", "seed", "priorSteps", "decoderSteps", "priorGuidance", "decoderGuidance", "sampler"] as const;
/** GetBatch failures the watcher rides out (a restarting gateway) for up to a minute. */
const TRANSIENT = new Set<number>([grpcStatus.UNAVAILABLE, grpcStatus.DEADLINE_EXCEEDED]);

/** unclip batch, batch-status, batch-results and batch-cancel. */
export function registerBatchCommands(program: Command, gateway: Gateway): void {
  imageFlags(
    program
      .command("batch")
      .description(
        "submit a batch (a prompts file: one prompt per line; or .jsonl: one BatchItem per line) and watch it to the end; " +
          "rerunning resumes watching the same batch",
      )
      .argument("[file]", "prompts file (# comments and blank lines skipped) or items .jsonl"),
    "images per prompt",
  )
    .option("--batch-id <id>", "the batch's id (default: b- and a hash of the items, so a rerun is the same batch)")
    .option("--manifest-key <key>", `a JSONL manifest already in the farm's bucket, for batches over ${MAX_INLINE_ITEMS} items`)
    .option("--print-items", "print the items as manifest JSONL and exit (to upload for --manifest-key)")
    .addOption(jsonOption("the ended Batch"))
    .action(async (file: string | undefined, o: BatchFlags, cmd: Command) => {
      const req = await batchRequest(file, o, cmd);
      if (!req) return;
      const client = gateway.connect();
      const progress = new BatchProgress();
      const onInterrupt = () => {
        progress.stop();
        const cli = gateway.invocation();
        console.error(
          `\nstopped watching batch ${req.batchId}; it keeps running on the farm.\n` +
            `  progress: ${cli} batch-status ${req.batchId}   (or rerun the same command: it submits nothing new)\n` +
            `  cancel:   ${cli} batch-cancel ${req.batchId}`,
        );
        process.exit(EXIT.INTERRUPTED);
      };
      process.once("SIGINT", onInterrupt);
      try {
        // SubmitBatch answers a resubmission like a submission; asking first tells the two apart for the message.
        const existed = await client.getBatch(req.batchId, { timeoutMs: 30_000 }).then(
          () => true,
          (err: ServiceError) => (err.code === grpcStatus.NOT_FOUND ? false : Promise.reject(err)),
        );
        let batch = await client.submitBatch(req, { timeoutMs: 120_000 }).catch(submitError);
        console.error(
          existed
            ? `batch ${batch.batchId} (${items(batch.total)}) was submitted at ${new Date(Number(batch.createdAtMs)).toLocaleString()}; nothing new submitted`
            : `batch ${batch.batchId}: ${items(batch.total)} submitted`,
        );
        progress.update(batch);
        batch = await watchBatch(client, batch, (b) => progress.update(b));
        progress.stop();
        printReply(BatchSchema, batch, o.json, describeEnd);
        if (!batchSucceeded(batch)) process.exitCode = EXIT.UNSUCCESSFUL;
      } finally {
        process.off("SIGINT", onInterrupt);
        progress.stop();
        client.close();
      }
    });

  registerReplyCommand(program, gateway, {
    name: "batch-status",
    description: "show a batch's state, counts, ETA and results URL (GetBatch); exits 1 when it ended without success",
    argument: "<batchId>",
    json: "the Batch",
    schema: BatchSchema,
    call: (c, batchId) => c.getBatch(batchId, { timeoutMs: 30_000 }),
    describe: describeBatch,
    unsuccessful: (batch) => batch.state !== BatchState.RUNNING && batch.state !== BatchState.UNSPECIFIED && !batchSucceeded(batch),
  });

  program
    .command("batch-results")
    .description("download a batch's images to DIR/<custom_id>/<index>.png and its results manifest to DIR/results.jsonl")
    .argument("<batchId>")
    .requiredOption("-o, --out <dir>", "where to write them")
    .option(
      "--json",
      "print a JSON summary (batchId, state, items, succeeded, failed, pending, downloaded, present, errors, resultsFile); nothing else on stdout",
    )
    .action(async (batchId: string, o: { out: string; json?: boolean }) => {
      await withClient(gateway, async (client) => {
        const batch = await client.getBatch(batchId, { timeoutMs: 30_000 });
        const d = await downloadBatchResults(client, batch, o.out);
        // Images that could not be fetched are a failure on this side (exit 3); a rerun fetches only what is missing.
        if (d.errors.length > 0) process.exitCode = EXIT.LOCAL;
        if (o.json) {
          console.log(
            JSON.stringify(
              { batchId, state: (toJson(BatchSchema, batch) as { state?: string }).state ?? "BATCH_STATE_UNSPECIFIED", ...d },
              null,
              2,
            ),
          );
          return;
        }
        const lines = [
          `batch ${batchId} (${batchStateName(batch.state)}): ${d.items} items, ${d.succeeded} succeeded, ${d.failed.length} failed or cancelled` +
            (d.pending === 0
              ? ""
              : batch.state === BatchState.RUNNING
                ? `, ${d.pending} not ended yet (run again later for them)`
                : `, ${d.pending} without an outcome`),
          `  ${d.downloaded} images downloaded${d.present ? `, ${d.present} already there` : ""}, under ${o.out}/<custom_id>/`,
          ...d.failed.slice(0, 10).map((f) => `  ${f.customId}: ${f.state}${f.error ? `: ${f.error}` : ""}`),
          ...(d.failed.length > 10 ? [`  … and ${d.failed.length - 10} more (see results.jsonl)`] : []),
          ...d.errors.slice(0, 10).map((e) => `  could not fetch ${e}`),
          ...(d.errors.length > 10 ? [`  … and ${d.errors.length - 10} more fetch errors`] : []),
          `  results: ${d.resultsFile}`,
        ];
        console.log(lines.join("\n"));
      });
    });

  registerReplyCommand(program, gateway, {
    name: "batch-cancel",
    description: "cancel a batch's items that have not ended (CancelBatch; the batch ends CANCELLED once they have stopped)",
    argument: "<batchId>",
    json: "the Batch",
    schema: BatchSchema,
    call: (c, batchId) => c.cancelBatch(batchId, { timeoutMs: 60_000 }),
    describe: describeBatch,
  });
}

/** The SubmitBatch request the flags ask for, or undefined when the command has done its work (--print-items). */
async function batchRequest(file: string | undefined, o: BatchFlags, cmd: Command): Promise<SubmitBatchRequest | undefined> {
  if (!file === !o.manifestKey) throw new UsageError("give a prompts file or .jsonl file, or --manifest-key KEY (not both)");
  const given = PROMPT_FLAGS.filter((f) => cmd.getOptionValueSource(f) === "cli");
  if ((o.manifestKey || isJsonlFile(file!)) && given.length > 0) {
    const flags = `--${given.map(kebab).join(", --")}`;
    throw new UsageError(
      `${flags} ${given.length === 1 ? "applies" : "apply"} to prompts files only; JSONL items carry their own settings`,
    );
  }
  if (o.batchId !== undefined && !BATCH_ID.test(o.batchId)) {
    throw new UsageError(`--batch-id ${JSON.stringify(o.batchId)}: expected 1 to 128 characters of A-Z a-z 0-9 _ -`);
  }
  if (o.manifestKey) {
    if (o.printItems) throw new UsageError("--print-items needs a file");
    return create(SubmitBatchRequestSchema, { batchId: o.batchId ?? manifestBatchId(o.manifestKey), manifestKey: o.manifestKey });
  }
  const items = await readBatchFile(file!, imageSettings(o));
  if (o.printItems) {
    process.stdout.write(itemsToJsonl(items));
    return undefined;
  }
  if (items.length > MAX_INLINE_ITEMS) {
    throw new UsageError(
      `${file} has ${items.length} items; at most ${MAX_INLINE_ITEMS} go inline. Put them in the farm's bucket as JSONL ` +
        `(unclip batch ${file} --print-items > items.jsonl, then upload it) and run unclip batch --manifest-key <key>`,
    );
  }
  return create(SubmitBatchRequestSchema, { batchId: o.batchId ?? defaultBatchId(items), items });
}

/** Polls GetBatch every second until the batch has ended. */
async function watchBatch(client: UnclipClient, batch: Batch, onUpdate: (b: Batch) => void): Promise<Batch> {
  let failingSince = 0;
  while (batch.state === BatchState.RUNNING || batch.state === BatchState.UNSPECIFIED) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      batch = await client.getBatch(batch.batchId, { timeoutMs: 10_000 });
      failingSince = 0;
    } catch (err) {
      failingSince ||= Date.now();
      if (!TRANSIENT.has((err as ServiceError).code) || Date.now() - failingSince > 60_000) throw err;
      continue;
    }
    onUpdate(batch);
  }
  return batch;
}

/** A conflicting batch id gets a hint; the gRPC status (and so the exit status, 64 + code) stays. */
function submitError(err: ServiceError): never {
  if (err.code === grpcStatus.ALREADY_EXISTS) err.details = `${err.details}; pass another --batch-id`;
  throw err;
}

/** Every item succeeded. */
const batchSucceeded = (b: Batch) => b.state === BatchState.COMPLETED && b.failed === 0 && b.cancelled === 0;

function describeEnd(batch: Batch): string {
  const seconds = (Number(batch.updatedAtMs) - Number(batch.createdAtMs)) / 1000;
  const head = `batch ${batch.batchId} ${batchStateName(batch.state)} after ${seconds.toFixed(1)} s: ${counts(batch)}`;
  if (batch.state === BatchState.FAILED) return `${head}\n  error: ${batch.error}`;
  return `${head}\n  results: unclip batch-results ${batch.batchId} --out <dir>`;
}

function describeBatch(batch: Batch): string {
  const ended = batch.succeeded + batch.failed + batch.cancelled;
  return [
    `batch ${batch.batchId}: ${batchStateName(batch.state)}`,
    `  ${counts(batch)}${batch.total > ended ? `, ${batch.total - ended} not ended` : ""}`,
    ...(batch.state === BatchState.RUNNING ? [`  ${formatEta(batch.etaSeconds)}`] : []),
    `  created ${new Date(Number(batch.createdAtMs)).toLocaleString()}, updated ${new Date(Number(batch.updatedAtMs)).toLocaleString()}`,
    ...(batch.error ? [`  error: ${batch.error}`] : []),
    ...(batch.resultsUrl ? [`  results: ${batch.resultsUrl}`] : []),
  ].join("\n");
}

const items = (n: number) => `${n} item${n === 1 ? "" : "s"}`;
const counts = (b: Batch) => `${items(b.total)}, ${b.succeeded} succeeded, ${b.failed} failed, ${b.cancelled} cancelled`;
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
