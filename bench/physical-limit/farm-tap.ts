import type { FarmConnection } from "@unclip/core";
import { fromBinary, JobEventSchema, StageTaskSchema, type JobEvent, type Stage } from "@unclip/protocol";

/** A stage task as published to its pool's subject, seen by a plain NATS subscriber. */
export interface TappedTask {
  /** The stage it asks for (route[0]). */
  readonly stage: Stage;
  /** Size of the message: what the floor publishes. */
  readonly bytes: number;
  /** It carries its input image (StageTask.image_png), so the stage does not read the store. */
  readonly inlineImage: boolean;
  /** When this process received it (Date.now()). */
  readonly receivedAtMs: number;
}

/** A worker's event as the worker sent it (the gateway drops the workers' terminal events and restamps its own). */
export interface TappedEvent {
  readonly case: NonNullable<JobEvent["event"]["case"]>;
  readonly atMs: number;
  readonly receivedAtMs: number;
}

/**
 * Listens on the farm's task and event subjects with core NATS subscriptions (JetStream stores the tasks; a plain
 * subscriber sees each publish as it happens), for the hop split and the payload sizes. Step events are skipped.
 */
export class FarmTap {
  private readonly tasks = new Map<string, TappedTask[]>();
  private readonly events = new Map<string, TappedEvent[]>();
  private readonly subs;

  constructor(conn: FarmConnection) {
    this.subs = [
      conn.nc.subscribe("farm.tasks.>", {
        callback: (err, msg) => {
          if (err) return;
          const task = fromBinary(StageTaskSchema, msg.data);
          const list = this.tasks.get(task.jobId) ?? [];
          list.push({ stage: task.route[0]!, bytes: msg.data.length, inlineImage: task.imagePng.length > 0, receivedAtMs: Date.now() });
          this.tasks.set(task.jobId, list);
        },
      }),
      conn.nc.subscribe("farm.events.>", {
        callback: (err, msg) => {
          if (err) return;
          const event = fromBinary(JobEventSchema, msg.data);
          const c = event.event.case;
          if (!c || c === "step") return;
          const list = this.events.get(event.jobId) ?? [];
          list.push({ case: c, atMs: Number(event.atMs), receivedAtMs: Date.now() });
          this.events.set(event.jobId, list);
        },
      }),
    ];
  }

  tasksOf(jobId: string): readonly TappedTask[] {
    return this.tasks.get(jobId) ?? [];
  }

  eventsOf(jobId: string): readonly TappedEvent[] {
    return this.events.get(jobId) ?? [];
  }

  /** Forgets what was seen (between phases, so a saturation run does not fill memory). */
  clear(): void {
    this.tasks.clear();
    this.events.clear();
  }

  close(): void {
    for (const s of this.subs) if (!s.isClosed()) s.unsubscribe();
  }
}
