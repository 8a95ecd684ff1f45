export { UnclipClient } from "./client.js";
export { renderJob, summarizeTimings, formatResult, JobFailedError, type RenderResult } from "./render-job.js";
export { RenderProgress } from "./render-progress.js";
