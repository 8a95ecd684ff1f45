import { readFile } from "node:fs/promises";
import { Tokenizer } from "@huggingface/tokenizers";

export class PromptTooLongError extends Error {
  override name = "PromptTooLongError";
  constructor(
    readonly prompt: string,
    readonly tokens: number,
    readonly maxLength: number,
  ) {
    const shown = prompt.length > 60 ? `${prompt.slice(0, 57)}...` : prompt;
    super(`prompt "${shown}" is ${tokens} tokens long; this model reads at most ${maxLength}. Shorten it.`);
  }
}

/** Token ids int64 [count, length] padded with padId, and the attention mask bool [count, length] (1 = token). */
export interface EncodedPrompts {
  inputIds: BigInt64Array;
  attentionMask: Uint8Array;
  count: number;
  length: number;
}

export interface PromptTokenizerOptions {
  maxLength: number;
  padId: number;
}

/** A Hugging Face tokenizer.json that encodes prompts to fixed-length rows, refusing prompts that do not fit. */
export class PromptTokenizer {
  constructor(
    private readonly tokenizer: Tokenizer,
    readonly maxLength: number,
    readonly padId: number,
  ) {}

  static async load(file: string, options: PromptTokenizerOptions): Promise<PromptTokenizer> {
    const json = JSON.parse(await readFile(file, "utf8")) as { model?: { unk_token?: string } };
    // WordLevel (read as "Legacy" by tokenizers.js) takes unk_token from the config argument only.
    const tokenizer = new Tokenizer(json, { unk_token: json.model?.unk_token });
    return new PromptTokenizer(tokenizer, options.maxLength, options.padId);
  }

  encode(prompts: readonly string[]): EncodedPrompts {
    const length = this.maxLength;
    const inputIds = new BigInt64Array(prompts.length * length).fill(BigInt(this.padId));
    const attentionMask = new Uint8Array(prompts.length * length);
    prompts.forEach((prompt, row) => {
      const { ids } = this.tokenizer.encode(prompt);
      if (ids.length > length) throw new PromptTooLongError(prompt, ids.length, length);
      ids.forEach((id, i) => {
        inputIds[row * length + i] = BigInt(id);
        attentionMask[row * length + i] = 1;
      });
    });
    return { inputIds, attentionMask, count: prompts.length, length };
  }
}
