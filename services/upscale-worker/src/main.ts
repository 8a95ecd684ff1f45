import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { int, runWorker, type Env } from "@unclip/core";
import { ensureEsrganBundle, loadUpscaler } from "@unclip/upscaler";
import { upscaleHandler } from "./upscale-handler.js";

const ESRGAN = /^esrgan-(slim|medium)-x([2348])$/;
// The shapes world's own upsamplers serve the shapes decoder; ESRGAN serves every other bundle's images.
const SHAPES_UPSAMPLERS = fileURLToPath(new URL("../../../models/shapes-upsamplers/", import.meta.url));

/** A setting the worker's environment sets, else undefined (each bundle's own, then the built-in default, apply). */
const configured = (env: Env, name: string, min: number, max: number) => (env[name] ? int(env, name, 0, min, max) : undefined);

await runWorker(
  "upscale-worker",
  { metricsPort: 9467, maxBatch: 4, bundle: `${SHAPES_UPSAMPLERS},esrgan-slim-x4` },
  async ({ config, env, log, store }) => {
    // UNCLIP_BUNDLE lists bundles, comma-separated: directories, or esrgan-<slim|medium>-x<scale> (converted once from
    // the npm package, then cached).
    const upscalers = [];
    try {
      for (const entry of config.bundle.split(",").map((b) => b.trim())) {
        const named = ESRGAN.exec(entry);
        const dir =
          named && !existsSync(entry) ? await ensureEsrganBundle(named[1] as "slim" | "medium", Number(named[2]) as 2 | 3 | 4 | 8) : entry;
        upscalers.push(
          await loadUpscaler(dir, {
            executionProvider: config.executionProvider,
            intraOpThreads: config.intraOpThreads,
            spinning: config.spinning,
            log: (msg, fields) => log.info(fields ?? {}, msg),
          }),
        );
      }
    } catch (err) {
      await Promise.allSettled(upscalers.map((u) => u.close()));
      throw err;
    }
    return upscaleHandler(upscalers, store, {
      tileSize: configured(env, "UNCLIP_UPSCALE_TILE", 16, 4096),
      overlap: configured(env, "UNCLIP_UPSCALE_TILE_OVERLAP", 0, 512),
      backProjection: configured(env, "UNCLIP_UPSCALE_BACK_PROJECTION", 0, 10),
    });
  },
);
