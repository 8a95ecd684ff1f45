#!/usr/bin/env -S npx tsx
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { convertLayersModel } from "./convert-layers-model.js";

const usage = "usage: tfjs-onnx <model.json> <out.onnx> [--input image] [--output upscaled]";
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { input: { type: "string", default: "image" }, output: { type: "string", default: "upscaled" } },
});
if (positionals.length !== 2) {
  console.error(usage);
  process.exit(2);
}
const [modelJson, out] = positionals;
try {
  const bytes = await convertLayersModel(modelJson, {
    inputName: values.input,
    outputName: values.output,
    docString: `converted from ${modelJson}`,
  });
  await writeFile(out, bytes);
  console.log(`${out}: ${bytes.length} bytes`);
} catch (error) {
  console.error(`tfjs-onnx: ${(error as Error).message}`);
  process.exit(1);
}
