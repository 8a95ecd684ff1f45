import { FarmError } from "@unclip/core";
import { loadBundleTokenizer, PromptTooLongError, type PromptTokenizer } from "@unclip/unclip/tokenizer";

/**
 * The tokenizer of the bundle the prior pool runs (UNCLIP_BUNDLE of the gateway), installed once at startup. It is
 * process-wide, like the other input limits, because every path that admits a prompt (the streaming RPCs and the batch
 * runner) checks it through the same prepare functions. Without one (unit tests of other modules) prompts are checked
 * for characters only, and the prior worker still refuses a prompt that does not fit.
 */
let tokenizer: PromptTokenizer | undefined;

/** Loads the bundle's tokenizer section only (no ONNX sessions) and uses it for every prompt from now on. */
export async function usePromptTokenizerOf(bundleDir: string): Promise<PromptTokenizer> {
  tokenizer = await loadBundleTokenizer(bundleDir);
  return tokenizer;
}

/** Replaces (or, with undefined, removes) the installed tokenizer; for tests. */
export function setPromptTokenizer(next: PromptTokenizer | undefined): void {
  tokenizer = next;
}

/** Refuses a prompt longer than the text encoder reads, counted by the same encoder call the prior worker makes. */
export function checkPromptTokens(prompt: string, field: string): void {
  if (!tokenizer) return;
  try {
    tokenizer.encode([prompt]);
  } catch (err) {
    if (!(err instanceof PromptTooLongError)) throw err;
    throw FarmError.invalid(`${field} is ${err.tokens} tokens; this model reads at most ${err.maxLength}. Shorten it.`);
  }
}

/**
 * Whether two captions give the text encoder the same input (the same token ids: "Red" and "red" under a lowercasing
 * tokenizer), so that their text embeddings cannot differ. Without a tokenizer, whether they are the same text.
 */
export function readTheSame(a: string, b: string): boolean {
  if (!tokenizer) return a === b;
  const { inputIds, length } = tokenizer.encode([a, b]);
  for (let i = 0; i < length; i++) if (inputIds[i] !== inputIds[length + i]) return false;
  return true;
}
