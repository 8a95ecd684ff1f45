import { ObjectStore } from "@unclip/core";

/** The real object store, timing every put: the worker uploads a batch's images before it starts the next batch. */
export class TimedObjectStore extends ObjectStore {
  readonly putMs: number[] = [];

  override async put(key: string, bytes: Uint8Array, contentType?: string): Promise<void> {
    const started = performance.now();
    await super.put(key, bytes, contentType);
    this.putMs.push(performance.now() - started);
  }
}
