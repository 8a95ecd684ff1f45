#!/usr/bin/env -S node --import tsx
import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import {
  create,
  GenerateRequestSchema,
  CreateVariationsRequestSchema,
  EditImageRequestSchema,
  JobState,
  toJson,
  JobSchema,
} from "@unclip/protocol";
import { UnclipClient } from "./client.js";
import { RenderProgress } from "./render-progress.js";
import { formatResult, renderJob, type RenderResult } from "./render-job.js";
import { int, samplingFlags, samplingOptions, seedOption, UsageError, type SamplingFlags } from "./cli-args.js";
import { registerBatchCommands } from "./batch-commands.js";

const program = new Command("unclip")
  .description("Talk to an unclip-farm gateway over gRPC")
  .option("-a, --address <host:port>", "gateway address", process.env.UNCLIP_GATEWAY ?? "127.0.0.1:50051")
  // Usage errors exit with 2 (help with 0); set before the subcommands, which inherit it.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

const sampling = (cmd: Command) =>
  samplingFlags(
    cmd
      .option("-n, --images <n>", "number of images (1-8)", int, 1)
      .option("-s, --size <px>", "output size: 64, 256 or 1024", int, 1024)
      .addOption(seedOption()),
  ).option("-o, --out <dir>", "where to write the PNGs", "out");

type RenderFlags = SamplingFlags & { images: number; size: number; seed: bigint; out: string };

const common = (o: RenderFlags) => ({ numImages: o.images, size: o.size, seed: o.seed, sampling: samplingOptions(o) });

async function follow(events: AsyncIterable<import("@unclip/protocol").JobEvent>, out: string): Promise<void> {
  const progress = new RenderProgress();
  let result: RenderResult;
  try {
    result = await renderJob(events, out, (e) => progress.update(e));
  } finally {
    progress.stop();
  }
  console.log(formatResult(result));
}

sampling(program.command("render").description("render images for a prompt").argument("<prompt>")).action(
  async (prompt: string, o: RenderFlags) => {
    const client = new UnclipClient(program.opts().address);
    await follow(client.generate(create(GenerateRequestSchema, { prompt, ...common(o) })), o.out);
    client.close();
  },
);

sampling(program.command("vary").description("make variations of an image").argument("<image>")).action(
  async (image: string, o: RenderFlags) => {
    const client = new UnclipClient(program.opts().address);
    await follow(client.createVariations(create(CreateVariationsRequestSchema, { image: await readFile(image), ...common(o) })), o.out);
    client.close();
  },
);

sampling(program.command("edit").description("repaint the masked region of an image (mask: white or transparent = repaint)"))
  .argument("<image>")
  .argument("<mask>")
  .argument("<prompt>")
  .action(async (image: string, mask: string, prompt: string, o: RenderFlags) => {
    const client = new UnclipClient(program.opts().address);
    const req = create(EditImageRequestSchema, { image: await readFile(image), mask: await readFile(mask), prompt, ...common(o) });
    await follow(client.editImage(req), o.out);
    client.close();
  });

program
  .command("status")
  .description("show a job")
  .argument("<jobId>")
  .action(async (jobId: string) => {
    const client = new UnclipClient(program.opts().address);
    const job = await client.getJob(jobId);
    console.log(JSON.stringify(toJson(JobSchema, job), null, 2));
    client.close();
    if (job.state === JobState.FAILED) process.exitCode = 1;
  });

program
  .command("cancel")
  .description("cancel a queued or running job")
  .argument("<jobId>")
  .action(async (jobId: string) => {
    const client = new UnclipClient(program.opts().address);
    const job = await client.cancelJob(jobId);
    console.log(`job ${job.jobId}: ${JobState[job.state]!.toLowerCase()}`);
    client.close();
  });

registerBatchCommands(program, () => program.opts<{ address: string }>().address);

program.parseAsync().catch((err: ServiceError | Error) => {
  const code = "code" in err && typeof err.code === "number" ? ` (${grpcStatus[err.code]})` : "";
  console.error(`unclip: ${"details" in err && err.details ? err.details : err.message}${code}`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
