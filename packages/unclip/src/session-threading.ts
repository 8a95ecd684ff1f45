import { availableParallelism } from "node:os";
import type { InferenceSession } from "onnxruntime-node";

/** How ONNX Runtime runs one session's operators on the CPU. */
export interface SessionThreading {
  /**
   * Intra-op threads of each session (default, or 0: every core this process may run on, `os.availableParallelism()`).
   * ONNX Runtime's own default counts the physical cores it detects, which is one on this project's 2-vCPU machines:
   * the decoder then ran at 10.5 instead of 17.7 images/s at batch 8 (docs/operations.md, "Threads").
   */
  intraOpThreads?: number;
  /**
   * Whether idle intra-op threads busy-wait for the next operator (default false; ONNX Runtime's own default is true).
   * Spinning threads hold cores that the other processes on the machine need: the farm's decoder worker ran 64 px
   * images at 10.0 images/s with them and 11.8 without (docs/operations.md, "Threads").
   */
  spinning?: boolean;
}

/** The session options for `threading`. */
export function threadingOptions({ intraOpThreads, spinning = false }: SessionThreading): InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: intraOpThreads || availableParallelism(),
    extra: { session: { intra_op: { allow_spinning: spinning ? "1" : "0" } } },
  };
}
