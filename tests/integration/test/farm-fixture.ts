import { fileURLToPath } from "node:url";
import { UnclipClient } from "@unclip/cli";
import { startFarmStack, type FarmStack, type FarmStackOptions } from "@unclip/devstack";
import { create, GenerateRequestSchema, SamplingOptionsSchema, type GenerateRequest, type JobEvent } from "@unclip/protocol";
import sharp from "sharp";

/** The tiny random-weight bundle: real ONNX graphs under the farm's tensor contract, fast on CPU. */
export const TINY_BUNDLE = fileURLToPath(new URL("../../../models/tiny-random/", import.meta.url));

export async function startTestFarm(
  opts: FarmStackOptions = {},
): Promise<{ farm: FarmStack; client: UnclipClient; stop(): Promise<void> }> {
  const farm = await startFarmStack({ bundle: TINY_BUNDLE, upscalerBundle: TINY_BUNDLE, ...opts });
  const client = new UnclipClient(farm.grpcAddress);
  return {
    farm,
    client,
    stop: async () => {
      client.close();
      await farm.stop();
    },
  };
}

export function generateRequest(prompt: string, fields: Omit<Partial<GenerateRequest>, "$typeName" | "$unknown"> = {}): GenerateRequest {
  return create(GenerateRequestSchema, {
    prompt,
    size: 64,
    seed: 7n,
    sampling: create(SamplingOptionsSchema, { priorSteps: 6, decoderSteps: 6 }),
    ...fields,
  });
}

export async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

export function terminal(events: JobEvent[]): JobEvent["event"] {
  return events[events.length - 1]!.event;
}

export async function pngSize(bytes: Uint8Array): Promise<{ width: number; height: number }> {
  const meta = await sharp(bytes).metadata();
  return { width: meta.width!, height: meta.height! };
}

export async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url} → ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}
