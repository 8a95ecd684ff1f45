import { FarmError, type StageHandler, type StageOutput, type TaskContext, type ObjectStore } from "@unclip/core";
import { stageOutputSize } from "@unclip/protocol";
import type { Upscaler } from "@unclip/upscaler";
import { decodeImage, encodePng, ImageInputError, type RgbImage } from "@unclip/unclip/image";
import { UpscalerRoutes } from "./upscaler-routes.js";

/** The worker's own settings; one left undefined keeps the bundle's (manifest) or the upscaler library's default. */
export interface UpscaleSettings {
  /** Inputs with a side above this are upscaled in overlapping tiles, so memory stays bounded. */
  tileSize?: number;
  overlap?: number;
  /** Back-projection iterations after each pass (removes the network's brightness drift; 0 = raw network). */
  backProjection?: number;
}

/**
 * upscale-worker: 64 → 256 and 256 → 1024 with single-pass super-resolution models (×4, or ×2 applied twice). A worker
 * may hold several upscalers: each task goes to the one made for its decoder's bundle, else to the generic one
 * (UpscalerRoutes). `configured` settings (the worker's environment) win over each bundle's own.
 */
export function upscaleHandler(
  upscalers: Upscaler | readonly Upscaler[],
  store: ObjectStore,
  configured: UpscaleSettings,
): StageHandler & { close(): Promise<void> } {
  const routes = new UpscalerRoutes(Array.isArray(upscalers) ? upscalers : [upscalers as Upscaler]);
  return {
    pool: "upscale",
    bundle: routes.upscalers.map((u) => u.bundle).join(","),
    executionProvider: routes.upscalers[0]!.provider,
    batchKey: (task) => String(routes.indexFor(task)),
    run: (batch, signal) => upscale(batch, signal),
    close: async () => {
      await Promise.allSettled(routes.upscalers.map((u) => u.close()));
    },
  };

  async function upscale(batch: readonly TaskContext[], signal: AbortSignal): Promise<(StageOutput | Error)[]> {
    const results: (StageOutput | Error)[] = batch.map(() => new Error("not run"));
    let upscaler: Upscaler;
    try {
      // The batch key is the route, so every task of a batch goes to the same upscaler.
      upscaler = routes.upscalerFor(batch[0]!.task);
    } catch (err) {
      return batch.map(() => err as Error);
    }
    const inputs: RgbImage[] = [];
    const ok: number[] = [];
    const target = stageOutputSize(batch[0]!.stage);
    for (let i = 0; i < batch.length; i++) {
      try {
        const { imagePng, imageKey } = batch[i]!.task;
        const image = await decodeImage(imagePng.length > 0 ? imagePng : await store.get(imageKey));
        passes(upscaler, image.width, target);
        inputs.push(image);
        ok.push(i);
      } catch (err) {
        // The input is the farm's own image from the stage before, not the client's: one that does not decode was
        // read while a redelivered task wrote it again (or cut short by an outage), so a later delivery can read it
        // whole. Errors of the store keep their own verdict (a deadline is retryable, a missing object is not).
        results[i] =
          err instanceof ImageInputError
            ? FarmError.unavailable(`the stored image ${batch[i]!.task.imageKey} could not be decoded: ${err.message}`, err)
            : (err as Error);
      }
    }
    // Same-sized inputs run as one batch (the runtime batches by stage, so sizes normally agree).
    const bySize = new Map<number, number[]>();
    ok.forEach((i, k) => bySize.set(inputs[k]!.width, [...(bySize.get(inputs[k]!.width) ?? []), k]));
    for (const [width, members] of bySize) {
      let images = members.map((k) => inputs[k]!);
      for (let p = 0; p < passes(upscaler, width, target); p++) {
        images = await upscaler.upscale(images, { ...configured, signal });
      }
      for (let m = 0; m < members.length; m++) {
        results[ok[members[m]!]!] = { png: await encodePng(images[m]!, { compressionLevel: 3 }), bundle: upscaler.bundle };
      }
    }
    return results;
  }

  function passes(upscaler: Upscaler, from: number, to: number): number {
    let n = 0;
    for (let side = from; side < to; side *= upscaler.scale) n++;
    if (from * upscaler.scale ** n !== to) {
      throw new FarmError(3, `cannot upscale ${from} px to ${to} px with a x${upscaler.scale} model`);
    }
    return n;
  }
}
