import { describe, expect, it } from "vitest";
import { PrefetchWindow } from "../src/prefetch-window.js";

describe("PrefetchWindow", () => {
  it("reserves exactly the free room, counting held and requested tasks", () => {
    const w = new PrefetchWindow(4);
    expect(w.reserve()).toBe(4);
    expect(w.room).toBe(0);
    expect(w.reserve()).toBe(0);
    w.delivered();
    w.delivered();
    w.unfilled(2);
    expect([w.held, w.requested, w.room]).toEqual([2, 0, 2]);
    expect(w.reserve()).toBe(2);
    w.release(2);
    expect(w.room).toBe(2);
  });

  it("never lets held plus requested exceed the capacity, whatever the order of events", () => {
    const w = new PrefetchWindow(3);
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const open: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const r = random();
      if (r < 0.3) {
        const n = w.reserve();
        if (n > 0) open.push(n);
      } else if (r < 0.6 && open.length > 0) {
        w.delivered();
        if (--open[0]! === 0) open.shift();
      } else if (r < 0.75 && open.length > 0) {
        w.unfilled(open.shift()!);
      } else if (w.held > 0) {
        w.release(1);
      }
      expect(w.held + w.requested).toBeLessThanOrEqual(3);
      expect(w.held).toBeGreaterThanOrEqual(0);
      expect(w.requested).toBe(open.reduce((a, b) => a + b, 0));
    }
  });

  it("refuses a delivery nobody asked for and releases of tasks it does not hold", () => {
    const w = new PrefetchWindow(2);
    expect(() => w.delivered()).toThrow(/no pull request asked/);
    expect(() => w.release(1)).toThrow(RangeError);
    w.reserve();
    expect(() => w.unfilled(3)).toThrow(RangeError);
  });

  it("holds a task delivered beyond its request, over capacity until it leaves", () => {
    const w = new PrefetchWindow(2);
    expect(w.reserve()).toBe(2);
    w.delivered();
    w.delivered();
    w.deliveredBeyondRequest();
    w.unfilled(0);
    expect(w.room).toBe(-1);
    expect(w.reserve()).toBe(0);
    w.release(3);
    expect(w.room).toBe(2);
  });

  it("wakes a waiter when room frees up, and on close", async () => {
    const w = new PrefetchWindow(1);
    w.reserve();
    w.delivered();
    let woke = false;
    const waiting = w.waitForRoom().then(() => (woke = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(woke).toBe(false);
    w.release(1);
    await waiting;
    expect(woke).toBe(true);
    w.reserve();
    const closed = w.waitForRoom();
    w.close();
    await closed;
    expect(w.room).toBe(0);
  });
});
