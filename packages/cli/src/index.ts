export { UnclipClient } from "./client.js";
export { renderJob, summarizeTimings, formatResult, JobFailedError, type RenderResult } from "./render-job.js";
export { RenderProgress } from "./render-progress.js";
export { parsePrompts, parseItemsJsonl, itemsToJsonl, defaultBatchId, MAX_INLINE_ITEMS, type PromptDefaults } from "./batch-file.js";
export { downloadBatchResults, safeFileName, type BatchDownload } from "./batch-download.js";
export { type UnaryOptions, type ConnectionOptions } from "./client.js";
export { runCli, type CliRun } from "./run-cli.js";
