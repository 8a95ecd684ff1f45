import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { create, fromBinary, toBinary, JobEventSchema, type JobEvent } from "@unclip/protocol";
import { eventSubject } from "./nats.js";

type EventBody = JobEvent["event"];

/** Progress events are fire-and-forget (core NATS): the job record in KV is the source of truth for results. */
export function publishEvent(nc: NatsConnection, jobId: string, event: EventBody): void {
  const message = create(JobEventSchema, { jobId, atMs: BigInt(Date.now()), event });
  nc.publish(eventSubject(jobId), toBinary(JobEventSchema, message));
}

export function subscribeEvents(nc: NatsConnection, jobId: string, onEvent: (e: JobEvent) => void): Subscription {
  return nc.subscribe(eventSubject(jobId), {
    callback: (err, msg) => {
      if (!err) onEvent(fromBinary(JobEventSchema, msg.data));
    },
  });
}
