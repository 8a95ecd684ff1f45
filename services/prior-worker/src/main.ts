import { runWorker } from "@unclip/core";
import { fileURLToPath } from "node:url";
import { loadBundle } from "@unclip/unclip";
import { priorHandler } from "./prior-handler.js";

await runWorker(
  "prior-worker",
  { metricsPort: 9465, maxBatch: 16, bundle: fileURLToPath(new URL("../../../models/shapes-v1/", import.meta.url)) },
  async ({ config, log, store }) => {
    const bundle = await loadBundle(config.bundle, {
      sections: ["tokenizer", "clip", "prior"],
      executionProvider: config.executionProvider,
      intraOpThreads: config.intraOpThreads || undefined,
      log: (msg, fields) => log.info(fields ?? {}, msg),
    });
    return priorHandler(bundle, store);
  },
);
