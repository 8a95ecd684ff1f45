import { readFile } from "node:fs/promises";
import { InferenceSession } from "onnxruntime-node";
import { BundleError, bundleFile, readManifest, type BundleManifest, type BundleSection } from "./manifest.js";
import { threadingOptions, type SessionThreading } from "./session-threading.js";
import { PromptTokenizer } from "./tokenizer.js";

export type ExecutionProvider = "cpu" | "cuda";
export type BundleLog = (msg: string, fields?: object) => void;

export interface LoadBundleOptions extends SessionThreading {
  /** The manifest sections this process uses; only their models are loaded. */
  sections: readonly BundleSection[];
  executionProvider?: ExecutionProvider;
  log?: BundleLog;
}

export interface BundleSessions {
  textEncoder?: InferenceSession;
  imageEncoder?: InferenceSession;
  prior?: InferenceSession;
  decoder?: InferenceSession;
  upscaler?: InferenceSession;
}

/** The prior works on (embedding − mean) / std. */
export interface EmbeddingStats {
  mean: Float32Array;
  std: Float32Array;
}

export interface Bundle {
  dir: string;
  manifest: BundleManifest;
  /** name@version, for results, logs and metric labels. */
  id: string;
  /** The provider the sessions actually run on (cpu when cuda was asked for but could not load). */
  executionProvider: ExecutionProvider;
  sessions: BundleSessions;
  tokenizer?: PromptTokenizer;
  embeddingStats?: EmbeddingStats;
  release(): Promise<void>;
}

/** Verifies a bundle's manifest and file hashes and opens ONNX sessions for the requested sections. */
export async function loadBundle(dir: string, options: LoadBundleOptions): Promise<Bundle> {
  const log = options.log ?? (() => {});
  const manifest = await readManifest(dir, options.sections);
  const id = `${manifest.name}@${manifest.version}`;
  let provider = options.executionProvider ?? "cpu";

  const threads = threadingOptions(options);

  const open = async (file: string): Promise<InferenceSession> => {
    const modelPath = bundleFile(dir, manifest, file);
    if (provider === "cuda") {
      try {
        return await InferenceSession.create(modelPath, { ...threads, executionProviders: ["cuda"] });
      } catch (error) {
        // onnxruntime does not fall back by itself, even with ["cuda", "cpu"]: choose CPU for every session here.
        log("CUDA execution provider failed to load; running this bundle on CPU", { bundle: id, model: file, error: String(error) });
        provider = "cpu";
      }
    }
    try {
      return await InferenceSession.create(modelPath, { ...threads, executionProviders: ["cpu"] });
    } catch (cause) {
      throw new BundleError(`cannot load ${file} (${(cause as Error).message})`, dir, { cause });
    }
  };

  const sessions: BundleSessions = {};
  const bundle: Bundle = {
    dir,
    manifest,
    id,
    executionProvider: provider,
    sessions,
    async release() {
      await Promise.all(Object.values(sessions).map((session: InferenceSession) => session.release()));
    },
  };
  const sections = new Set(options.sections);
  if (sections.has("tokenizer") && manifest.tokenizer) {
    const { file, maxLength, padId } = manifest.tokenizer;
    bundle.tokenizer = await PromptTokenizer.load(bundleFile(dir, manifest, file), { maxLength, padId });
  }
  if (sections.has("clip") && manifest.clip) {
    sessions.textEncoder = await open(manifest.clip.textEncoder);
    if (manifest.clip.imageEncoder) sessions.imageEncoder = await open(manifest.clip.imageEncoder);
  }
  if (sections.has("prior") && manifest.prior) {
    sessions.prior = await open(manifest.prior.model);
    bundle.embeddingStats = await readEmbeddingStats(dir, manifest, manifest.prior.embeddingStats);
  }
  if (sections.has("decoder") && manifest.decoder) sessions.decoder = await open(manifest.decoder.model);
  if (sections.has("upscaler") && manifest.upscaler) sessions.upscaler = await open(manifest.upscaler.model);
  bundle.executionProvider = provider;
  log("model bundle loaded", { bundle: id, executionProvider: provider, sections: [...sections] });
  return bundle;
}

async function readEmbeddingStats(dir: string, manifest: BundleManifest, file: string): Promise<EmbeddingStats> {
  const stats = JSON.parse(await readFile(bundleFile(dir, manifest, file), "utf8")) as { mean?: number[]; std?: number[] };
  const dim = manifest.clip?.embedDim;
  if (
    !Array.isArray(stats.mean) ||
    !Array.isArray(stats.std) ||
    stats.mean.length !== stats.std.length ||
    (dim && stats.mean.length !== dim)
  ) {
    throw new BundleError(`${file} needs "mean" and "std" arrays of the embedding dimension`, dir);
  }
  return { mean: Float32Array.from(stats.mean), std: Float32Array.from(stats.std) };
}
