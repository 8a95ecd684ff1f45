import { CANCEL_SUBJECT, isTerminal, publishEvent, type FarmConnection, type JobStore } from "@unclip/core";
import { JobState, type Job } from "@unclip/protocol";

/**
 * Marks a job CANCELLED unless it has already ended, tells the workers (they stop its tasks between diffusion steps)
 * and its watchers. Returns the record as it now is, or undefined when the job does not exist.
 */
export async function cancelJob(conn: FarmConnection, jobs: JobStore, jobId: string, reason: string): Promise<Job | undefined> {
  const job = await jobs.update(jobId, (j) => {
    if (isTerminal(j)) return undefined;
    j.state = JobState.CANCELLED;
    j.error = reason;
    return j;
  });
  if (job?.state === JobState.CANCELLED && job.error === reason) {
    conn.nc.publish(CANCEL_SUBJECT, job.jobId);
    publishEvent(conn.nc, job.jobId, { case: "cancelled", value: job });
  }
  return job;
}
