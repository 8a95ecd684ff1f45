import { bundleFile, readManifest } from "./manifest.js";
import { PromptTokenizer } from "./tokenizer.js";

export { PromptTokenizer, PromptTooLongError } from "./tokenizer.js";

/**
 * The prompt tokenizer of a bundle, without its ONNX models: what a process that only checks prompts (the gateway)
 * needs to count tokens exactly as the bundle's text encoder will. The manifest and its file hashes are verified as
 * loadBundle verifies them, so the count comes from the same bundle the prior workers run.
 */
export async function loadBundleTokenizer(dir: string): Promise<PromptTokenizer> {
  const manifest = await readManifest(dir, ["tokenizer"]);
  const { file, maxLength, padId } = manifest.tokenizer!;
  return PromptTokenizer.load(bundleFile(dir, manifest, file), { maxLength, padId });
}
