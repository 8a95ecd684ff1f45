import { runWorker } from "@unclip/core";
import { fileURLToPath } from "node:url";
import { loadBundle } from "@unclip/unclip";
import { priorHandler } from "./prior-handler.js";

await runWorker(
  "prior-worker",
  {
    metricsPort: 9465,
    maxBatch: 16,
    bundle: fileURLToPath(new URL("../../../models/shapes-v1/", import.meta.url)),
    // The prior's runs take milliseconds, too short to share out: on the bench machine one thread ran a batch of 16 in
    // 15 ms and one prompt in 3 ms, two spinning threads in 25 and 6 ms, and took the cores the decoder needs.
    intraOpThreads: 1,
  },
  async ({ config, log, store }) => {
    const bundle = await loadBundle(config.bundle, {
      sections: ["tokenizer", "clip", "prior"],
      executionProvider: config.executionProvider,
      intraOpThreads: config.intraOpThreads,
      spinning: config.spinning,
      log: (msg, fields) => log.info(fields ?? {}, msg),
    });
    return priorHandler(bundle, store);
  },
);
