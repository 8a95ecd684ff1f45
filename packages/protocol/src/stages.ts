import { Stage } from "./gen/farm/v1/api_pb.js";

/** A worker pool: the process kind that serves a set of stages from one subject, farm.tasks.<pool>. */
export type Pool = "prior" | "decoder" | "upscale";

const pools: Record<Stage, Pool | undefined> = {
  [Stage.UNSPECIFIED]: undefined,
  [Stage.PRIOR]: "prior",
  [Stage.IMAGE_ENCODE]: "prior",
  [Stage.DECODER]: "decoder",
  [Stage.UPSCALE_256]: "upscale",
  [Stage.UPSCALE_1024]: "upscale",
  [Stage.INTERPOLATE_EMBED]: "prior",
  [Stage.TEXT_DIFF]: "prior",
};

export function stagePool(stage: Stage): Pool {
  const pool = pools[stage];
  if (!pool) throw new RangeError(`stage ${stage} has no worker pool`);
  return pool;
}

/** Short lowercase name used in metrics labels, logs and object keys. */
export function stageName(stage: Stage): string {
  return (Stage[stage] ?? `stage_${stage}`).toLowerCase().replace(/_/g, "-");
}

/** Side in pixels of the image a stage writes, or 0 for stages that produce an embedding. */
export function stageOutputSize(stage: Stage): number {
  switch (stage) {
    case Stage.DECODER:
      return 64;
    case Stage.UPSCALE_256:
      return 256;
    case Stage.UPSCALE_1024:
      return 1024;
    default:
      return 0;
  }
}
