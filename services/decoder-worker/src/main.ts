import { runWorker } from "@unclip/core";
import { fileURLToPath } from "node:url";
import { loadBundle } from "@unclip/unclip";
import { decoderHandler } from "./decoder-handler.js";

await runWorker(
  "decoder-worker",
  { metricsPort: 9466, maxBatch: 8, bundle: fileURLToPath(new URL("../../../models/shapes-v1/", import.meta.url)) },
  async ({ config, log, store }) => {
    const bundle = await loadBundle(config.bundle, {
      sections: ["decoder"],
      executionProvider: config.executionProvider,
      intraOpThreads: config.intraOpThreads,
      spinning: config.spinning,
      log: (msg, fields) => log.info(fields ?? {}, msg),
    });
    return decoderHandler(bundle, store);
  },
);
