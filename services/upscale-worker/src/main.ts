import { existsSync } from "node:fs";
import { int, runWorker } from "@unclip/core";
import { ensureEsrganBundle, loadUpscaler } from "@unclip/upscaler";
import { upscaleHandler } from "./upscale-handler.js";

const ESRGAN = /^esrgan-(slim|medium)-x([2348])$/;

await runWorker("upscale-worker", { metricsPort: 9467, maxBatch: 4, bundle: "esrgan-slim-x4" }, async ({ config, env, log, store }) => {
  // UNCLIP_BUNDLE is a bundle directory, or esrgan-<slim|medium>-x<scale>: converted once from the npm package, then cached.
  const named = ESRGAN.exec(config.bundle);
  const dir =
    named && !existsSync(config.bundle)
      ? await ensureEsrganBundle(named[1] as "slim" | "medium", Number(named[2]) as 2 | 3 | 4 | 8)
      : config.bundle;
  const upscaler = await loadUpscaler(dir, {
    executionProvider: config.executionProvider,
    intraOpThreads: config.intraOpThreads || undefined,
    log: (msg, fields) => log.info(fields ?? {}, msg),
  });
  const tileSize = int(env, "UNCLIP_UPSCALE_TILE", 128, 16, 4096);
  const overlap = int(env, "UNCLIP_UPSCALE_TILE_OVERLAP", 16, 0, 512);
  const backProjection = int(env, "UNCLIP_UPSCALE_BACK_PROJECTION", 1, 0, 10);
  return upscaleHandler(upscaler, store, { tileSize, overlap, backProjection });
});
