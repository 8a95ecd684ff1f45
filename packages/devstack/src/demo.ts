import path from "node:path";
import { create, GenerateRequestSchema } from "@unclip/protocol";
import { formatResult, RenderProgress, renderJob, UnclipClient } from "@unclip/cli";
import { ConfigError } from "@unclip/core";
import { describeProcess, startFarmStack, type FarmStack } from "./farm-stack.js";

/**
 * `npm run demo -- "a prompt"`: starts the whole farm on this machine (nats-server, embedded S3, gateway and the
 * worker processes of each pool, UNCLIP_FARM_WORKERS), renders the prompt through it at 64, 256 and 1024 px, writes the PNGs under ./out/, prints
 * where they are and how long each stage took, and shuts everything down.
 */
const prompt = process.argv.slice(2).join(" ").trim() || "a red circle on a blue background";
const outDir = path.resolve(process.env.INIT_CWD ?? process.cwd(), "out");
const logDir = path.join(outDir, "logs");

const t0 = Date.now();
console.log(`starting the farm (logs in ${logDir}) …`);
let farm: FarmStack;
try {
  farm = await startFarmStack({ logDir, log: (line) => console.log(line) });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`demo: ${err.message}`);
  process.exit(2);
}
let failed = false;
try {
  console.log(
    `farm up in ${((Date.now() - t0) / 1000).toFixed(1)} s: gateway ${farm.grpcAddress}, nats ${farm.nats.url}, s3 ${farm.s3.endpoint}`,
  );
  for (const s of farm.services()) console.log(`  ${s.name.padEnd(17)} ${describeProcess(s.current)}`);
  console.log(`rendering "${prompt}" …`);
  // A farm started with UNCLIP_API_KEYS_FILE wants a key, as the CLI does.
  const client = new UnclipClient(farm.grpcAddress, { apiKey: process.env.UNCLIP_API_KEY || undefined });
  const progress = new RenderProgress();
  try {
    const result = await renderJob(client.generate(create(GenerateRequestSchema, { prompt, size: 1024, seed: 42n })), outDir, (e) =>
      progress.update(e),
    );
    progress.stop();
    console.log(formatResult(result));
  } finally {
    progress.stop();
    client.close();
  }
} catch (err) {
  failed = true;
  console.error(`demo failed: ${(err as Error).message}`);
} finally {
  await farm.stop();
  console.log("farm stopped");
}
process.exit(failed ? 1 : 0);
