import { FarmError, GrpcStatus } from "@unclip/core";
import type { StageTask } from "@unclip/protocol";
import type { Upscaler } from "@unclip/upscaler";

/**
 * Which of a worker's upscalers serves a task: the first one made for the decoder bundle that drew the task's image
 * (its manifest's `upscaler.decoders`), else the first generic one. The decoder's bundle is read from the task's
 * record of the stages it passed ("decoder=shapes-v1@1.5.0").
 */
export class UpscalerRoutes {
  private readonly generic: number;

  constructor(readonly upscalers: readonly Upscaler[]) {
    this.generic = upscalers.findIndex((u) => u.decoders.length === 0);
  }

  /** The index of the upscaler for `task`, or -1 when none of them serves its decoder. */
  indexFor(task: StageTask): number {
    const decoder = decoderBundleName(task);
    const made = decoder === undefined ? -1 : this.upscalers.findIndex((u) => u.decoders.includes(decoder));
    return made >= 0 ? made : this.generic;
  }

  /** The upscaler for `task`; a FarmError (not retryable: no delivery can change it) when none serves its decoder. */
  upscalerFor(task: StageTask): Upscaler {
    const index = this.indexFor(task);
    if (index >= 0) return this.upscalers[index]!;
    throw new FarmError(
      GrpcStatus.FAILED_PRECONDITION,
      `no upscaler of this worker serves images of decoder bundle ${decoderBundleName(task) ?? "(unknown)"}: it has ${this.upscalers
        .map((u) => `${u.bundle} (for ${u.decoders.join(", ")})`)
        .join(", ")} and no generic one`,
    );
  }
}

function decoderBundleName(task: StageTask): string | undefined {
  const entry = task.bundles.find((b) => b.startsWith("decoder="));
  return entry?.slice("decoder=".length).split("@")[0];
}
