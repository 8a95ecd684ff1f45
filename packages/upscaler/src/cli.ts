#!/usr/bin/env -S npx tsx
// Converts the ESRGAN models of the installed @upscalerjs packages into the bundle cache (root postinstall runs this).
// usage: ensure-esrgan [variant:scale ...] [--cache DIR]   e.g. ensure-esrgan slim:4 medium:4
import { parseArgs } from "node:util";
import { DEFAULT_CACHE_ROOT, type EsrganScale, type EsrganVariant, ensureEsrganBundle } from "./ensure-esrgan-bundle.js";

const { positionals, values } = parseArgs({ allowPositionals: true, options: { cache: { type: "string", default: DEFAULT_CACHE_ROOT } } });
for (const spec of positionals.length > 0 ? positionals : ["slim:4", "medium:4"]) {
  const [variant, scale] = spec.split(":");
  const started = performance.now();
  const dir = await ensureEsrganBundle(variant as EsrganVariant, Number(scale) as EsrganScale, values.cache);
  console.log(`esrgan ${spec}: ${dir} (${Math.round(performance.now() - started)} ms)`);
}
