import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FarmError, GrpcStatus, type ObjectStore, type TaskContext } from "@unclip/core";
import { create, Stage, StageTaskSchema } from "@unclip/protocol";
import { loadUpscaler, type Upscaler } from "@unclip/upscaler";
import { decodeImage, encodePng } from "@unclip/unclip/image";
import { upscaleHandler } from "../src/upscale-handler.js";

const TINY_BUNDLE = fileURLToPath(new URL("../../../models/tiny-random/", import.meta.url));

let upscaler: Upscaler;
beforeAll(async () => {
  upscaler = await loadUpscaler(TINY_BUNDLE, { executionProvider: "cpu", intraOpThreads: 1 });
});
afterAll(async () => {
  await upscaler?.close();
});

/** The object store as the handler sees it: what each key reads as (bytes, or the error the read fails with). */
function storeOf(objects: Record<string, Uint8Array | Error>): ObjectStore {
  return {
    get: (key: string) => {
      const o = objects[key];
      return o instanceof Error ? Promise.reject(o) : Promise.resolve(Buffer.from(o ?? new Uint8Array()));
    },
  } as unknown as ObjectStore;
}

const task = (imageKey: string): TaskContext => ({
  task: create(StageTaskSchema, { imageKey }),
  stage: Stage.UPSCALE_256,
  attempt: 1,
  progress: () => undefined,
});

describe("upscaleHandler's inputs", () => {
  it("upscales a readable image, and retries one that does not decode or that the store did not return in time", async () => {
    const gray = new Uint8Array(64 * 64 * 3).fill(128);
    const png = await encodePng({ width: 64, height: 64, data: gray });
    const timeout = FarmError.unavailable("the object store did not answer within 10000 ms (reading renders/j/2/64.png)");
    const handler = upscaleHandler(
      upscaler,
      storeOf({ "renders/j/0/64.png": png, "renders/j/1/64.png": new Uint8Array(), "renders/j/2/64.png": timeout }),
      { tileSize: 128, overlap: 16, backProjection: 0 },
    );
    const [ok, empty, late] = await handler.run(
      ["renders/j/0/64.png", "renders/j/1/64.png", "renders/j/2/64.png"].map(task),
      new AbortController().signal,
    );
    expect(ok).not.toBeInstanceOf(Error);
    // A half-written intermediate image is the store's passing state, not bad input: another delivery reads it whole.
    expect(empty).toMatchObject({ code: GrpcStatus.UNAVAILABLE, retryable: true });
    expect((empty as Error).message).toMatch(/^the stored image renders\/j\/1\/64\.png could not be decoded: .*0 bytes/);
    expect(late).toBe(timeout);
  });
});

describe("upscaleHandler's inline inputs", () => {
  it("reads an image the task carries from the task, not from the store, and the stored one when it carries none", async () => {
    const inline = await encodePng({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(30) });
    const stored = await encodePng({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(220) });
    // The key of the inline task is not in the store yet (its write runs alongside the publish): reading it would fail.
    const handler = upscaleHandler(
      upscaler,
      storeOf({ "renders/j/0/64.png": FarmError.unavailable("not written yet"), "renders/j/1/64.png": stored }),
      { backProjection: 0 },
    );
    const carrying: TaskContext = {
      ...task("renders/j/0/64.png"),
      task: create(StageTaskSchema, { imageKey: "renders/j/0/64.png", imagePng: inline }),
    };
    const [fromTask, fromStore] = await handler.run([carrying, task("renders/j/1/64.png")], new AbortController().signal);
    const mean = async (out: unknown) => {
      const { data } = await decodeImage((out as { png: Uint8Array }).png);
      return data.reduce((a, b) => a + b, 0) / data.length;
    };
    expect(fromTask).not.toBeInstanceOf(Error);
    expect(fromStore).not.toBeInstanceOf(Error);
    // The tiny random upscaler keeps a flat image's level roughly: the dark input stays darker than the light one.
    expect(await mean(fromTask)).toBeLessThan(await mean(fromStore));
  });
});

describe("upscaleHandler's settings", () => {
  it("keeps the bundle's own and the built-in settings where the worker's configuration leaves one unset", async () => {
    const png = await encodePng({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(90) });
    const handler = upscaleHandler(upscaler, storeOf({ "renders/j/0/64.png": png }), {
      tileSize: undefined,
      overlap: undefined,
      backProjection: undefined,
    });
    const [out] = await handler.run([task("renders/j/0/64.png")], new AbortController().signal);
    expect(out).not.toBeInstanceOf(Error);
    expect(out).toMatchObject({ bundle: upscaler.bundle });
  });
});
