import { threadingOptions, type SessionThreading } from "@unclip/unclip/session-threading";
import ort from "onnxruntime-node";
import type { Log } from "./types.js";

/**
 * Opens an ONNX session on the asked provider. onnxruntime-node does not fall back when ['cuda', 'cpu'] is given and
 * the CUDA provider is missing (it throws), so CUDA is tried alone and the CPU is used, and logged, when it fails.
 */
export async function createSession(
  modelPath: string,
  provider: "cpu" | "cuda",
  log: Log,
  threading: SessionThreading,
): Promise<{ session: ort.InferenceSession; provider: "cpu" | "cuda" }> {
  const threads = threadingOptions(threading);
  if (provider === "cuda") {
    try {
      return { session: await ort.InferenceSession.create(modelPath, { ...threads, executionProviders: ["cuda"] }), provider: "cuda" };
    } catch (error) {
      log("upscaler: the CUDA execution provider is not available, running on the CPU", {
        model: modelPath,
        error: (error as Error).message,
      });
    }
  }
  return { session: await ort.InferenceSession.create(modelPath, { ...threads, executionProviders: ["cpu"] }), provider: "cpu" };
}
