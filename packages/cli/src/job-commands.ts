import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import {
  create,
  toJsonString,
  CreateVariationsRequestSchema,
  EditImageRequestSchema,
  GenerateRequestSchema,
  JobEventSchema,
  JobKind,
  JobSchema,
  JobState,
  OutputOptionsSchema,
  type Job,
  type JobEvent,
} from "@unclip/protocol";
import { imageFlags, imageSettings, jsonOption, UsageError, type ImageFlags } from "./cli-args.js";
import type { UnclipClient } from "./client.js";
import { withClient, type Gateway } from "./command-context.js";
import { describeError, EXIT } from "./exit-codes.js";
import { formatEta } from "./batch-progress.js";
import { formatResult, renderJob, summarizeTimings } from "./render-job.js";
import { RenderProgress } from "./render-progress.js";
import { registerReplyCommand } from "./reply-command.js";

export type FollowFlags = { out: string; json?: boolean; cancelOnInterrupt?: boolean; includeBytes?: boolean };
type RenderFlags = ImageFlags & FollowFlags;

type JobStream = AsyncIterable<JobEvent> & { cancel(): void };

/** Flags shared by the commands that follow a job's events: render, vary, edit, interpolate, transform and watch. */
export const followFlags = (cmd: Command): Command =>
  cmd
    .option("-o, --out <dir>", "where to write the PNGs (as <dir>/<jobId>/<index>-<size>.png)", "out")
    .addOption(jsonOption("each JobEvent, one per line,"))
    .option("--cancel-on-interrupt", "on Ctrl-C, cancel the job (CancelJob) instead of leaving it running");

/** --include-bytes, on the commands that start a job. */
export const includeBytesFlag = (cmd: Command): Command =>
  cmd.option(
    "--include-bytes",
    "have the gateway send the PNGs inline (OutputOptions.include_bytes) instead of fetching presigned URLs; " +
      "for clients that cannot reach the object store",
  );

const renderFlags = (cmd: Command): Command => followFlags(includeBytesFlag(imageFlags(cmd, "number of images")));

/** The OutputOptions --include-bytes asks for (none without it). */
export const outputOptions = (o: FollowFlags) => (o.includeBytes ? { output: create(OutputOptionsSchema, { includeBytes: true }) } : {});

const common = (o: RenderFlags) => ({ ...imageSettings(o), ...outputOptions(o) });

/** unclip render, vary, edit, watch, status and cancel. */
export function registerJobCommands(program: Command, gateway: Gateway): void {
  renderFlags(program.command("render").description("render images for a prompt (Generate)").argument("<prompt>")).action(
    async (prompt: string, o: RenderFlags) => {
      await withClient(gateway, (client) =>
        follow(gateway, client, () => client.generate(create(GenerateRequestSchema, { prompt, ...common(o) })), o),
      );
    },
  );

  renderFlags(program.command("vary").description("make variations of an image (CreateVariations)").argument("<image>")).action(
    async (image: string, o: RenderFlags) => {
      const req = create(CreateVariationsRequestSchema, { image: await readInput(image), ...common(o) });
      await withClient(gateway, (client) => follow(gateway, client, () => client.createVariations(req), o));
    },
  );

  renderFlags(
    program
      .command("edit")
      .description("repaint the masked region of an image (EditImage; mask: white or transparent = repaint)")
      .argument("<image>")
      .argument("<mask>")
      .argument("<prompt>"),
  ).action(async (image: string, mask: string, prompt: string, o: RenderFlags) => {
    const req = create(EditImageRequestSchema, { image: await readInput(image), mask: await readInput(mask), prompt, ...common(o) });
    await withClient(gateway, (client) => follow(gateway, client, () => client.editImage(req), o));
  });

  followFlags(
    program
      .command("watch")
      .description("follow an existing job (WatchJob) to its end and write its images, as render does")
      .argument("<jobId>"),
  ).action(async (jobId: string, o: FollowFlags) => {
    if (!o.json) console.error(`watching job ${jobId}`);
    await withClient(gateway, (client) => follow(gateway, client, () => client.watchJob(jobId), o, jobId));
  });

  registerReplyCommand(program, gateway, {
    name: "status",
    description: "show a job (GetJob); exits 1 when the job ended failed or cancelled",
    argument: "<jobId>",
    json: "the Job",
    schema: JobSchema,
    call: (c, jobId) => c.getJob(jobId, { timeoutMs: 30_000 }),
    describe: describeJob,
    unsuccessful: (job) => job.state === JobState.FAILED || job.state === JobState.CANCELLED,
  });

  registerReplyCommand(program, gateway, {
    name: "cancel",
    description: "cancel a queued or running job (CancelJob; a job that already ended is FAILED_PRECONDITION, exit 73)",
    argument: "<jobId>",
    json: "the cancelled Job",
    schema: JobSchema,
    call: (c, jobId) => c.cancelJob(jobId, { timeoutMs: 60_000 }),
    describe: (job) => `job ${job.jobId}: ${stateName(job.state)}`,
  });
}

/**
 * Follows a job's stream to its end: progress bars (or JSON lines) as events come, the job id on stderr once it is
 * queued, the images written under o.out. Ctrl-C leaves the job running (printing how to watch or cancel it) or,
 * with --cancel-on-interrupt, cancels it; either way the CLI exits 130.
 */
export async function follow(
  gateway: Gateway,
  client: UnclipClient,
  start: () => JobStream,
  o: FollowFlags,
  knownJobId?: string,
): Promise<void> {
  const progress = o.json ? undefined : new RenderProgress();
  let jobId = knownJobId;
  let interrupting: Promise<never> | undefined;
  const interrupt = async (): Promise<never> => {
    progress?.stop();
    const cli = gateway.invocation();
    if (!jobId) {
      console.error("\ninterrupted before the gateway queued the job (if it admitted it meanwhile, the job runs on)");
    } else if (o.cancelOnInterrupt) {
      try {
        const job = await client.cancelJob(jobId, { timeoutMs: 10_000 });
        console.error(`\ncancelled job ${jobId} (${stateName(job.state)})`);
      } catch (err) {
        console.error(`\ncould not cancel job ${jobId}: ${describeError(err)}\n  status: ${cli} status ${jobId}`);
      }
    } else {
      console.error(
        `\nstopped following job ${jobId}; it keeps running on the farm.\n` +
          `  follow it: ${cli} watch ${jobId}\n` +
          `  cancel it: ${cli} cancel ${jobId}`,
      );
    }
    process.exit(EXIT.INTERRUPTED);
  };
  const onInterrupt = () => void (interrupting ??= interrupt());
  process.on("SIGINT", onInterrupt);
  try {
    const result = await renderJob(start(), o.out, (event) => {
      if (interrupting) return;
      if (!jobId && event.jobId) {
        jobId = event.jobId;
        if (!o.json && event.event.case === "queued") console.error(`job ${jobId} queued, ${formatEta(event.event.value.etaSeconds)}`);
      }
      if (o.json) process.stdout.write(`${toJsonString(JobEventSchema, event)}\n`);
      else progress!.update(event);
    });
    progress?.stop();
    if (interrupting) await interrupting;
    if (!o.json) console.log(formatResult(result));
  } catch (err) {
    progress?.stop();
    // A Ctrl-C decides the exit status, not the stream it interrupted.
    if (interrupting) await interrupting;
    throw err;
  } finally {
    process.off("SIGINT", onInterrupt);
  }
}

/** A person-readable summary of a job. */
export function describeJob(job: Job): string {
  const kind = (JobKind[job.kind] ?? "job").toLowerCase();
  const lines = [
    `job ${job.jobId}: ${stateName(job.state)}`,
    `  ${kind}, ${job.numImages} image${job.numImages === 1 ? "" : "s"} at ${job.size} px, seed ${job.seed}` +
      (job.prompt ? `, prompt ${JSON.stringify(job.prompt)}` : ""),
    `  created ${new Date(Number(job.createdAtMs)).toLocaleString()}, updated ${new Date(Number(job.updatedAtMs)).toLocaleString()}`,
  ];
  if (job.error) lines.push(`  error: ${job.error}`);
  for (const t of summarizeTimings(job.timings)) {
    lines.push(`  ${t.stage.padEnd(14)} ${t.seconds.toFixed(3).padStart(8)} s per image (queue wait ${t.queueSeconds.toFixed(3)} s)`);
  }
  for (const image of job.images) lines.push(`  image ${image.index} ${String(image.size).padStart(4)} px  ${image.url || image.key}`);
  return lines.join("\n");
}

const stateName = (state: JobState): string => (JobState[state] ?? "unspecified").toLowerCase();

/** An input file's bytes; an unreadable file is a usage error. */
export async function readInput(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
