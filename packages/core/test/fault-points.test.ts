import { spawnSync } from "node:child_process";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { armFaultPoints, faultPoint, loadFaultPoints, loadWorkerConfig } from "../src/index.js";

const silent = pino({ level: "silent" });

describe("fault points", () => {
  afterEach(() => armFaultPoints(new Map(), silent));

  it("are off unless UNCLIP_FAULT_POINTS names them", () => {
    const defaults = { metricsPort: 1, maxBatch: 1, bundle: "" };
    expect(loadWorkerConfig({}, defaults).faultPoints.size).toBe(0);
    const points = loadWorkerConfig({ UNCLIP_FAULT_POINTS: "after-store=0.05, before-ack=1" }, defaults).faultPoints;
    expect(Object.fromEntries(points)).toEqual({ "after-store": 0.05, "before-ack": 1 });
  });

  it("refuse a bad entry with a message that names the variable", () => {
    for (const raw of ["after-store", "after-store=1.5", "after-store=x", "After=0.1", "a=0.1=2", "a=-0.1"]) {
      expect(() => loadFaultPoints({ UNCLIP_FAULT_POINTS: raw })).toThrow(/UNCLIP_FAULT_POINTS: .* must be name=probability/);
    }
    expect(() => loadFaultPoints({ UNCLIP_FAULT_POINTS: "a=0.1,a=0.2" })).toThrow(/UNCLIP_FAULT_POINTS: fault point a is named twice/);
  });

  it("fire at their probability per passage, and only the points named", () => {
    const kills: number[] = [];
    const draws = [0.5, 0.05, 0.2, 0.0];
    let pass = 0;
    armFaultPoints(loadFaultPoints({ UNCLIP_FAULT_POINTS: "after-store=0.1" }), silent, {
      random: () => draws.shift()!,
      kill: () => kills.push(pass),
    });
    for (pass = 0; pass < 4; pass++) {
      faultPoint("after-store");
      faultPoint("before-ack");
    }
    expect(kills).toEqual([1, 3]);
  });

  it("kill the process with SIGKILL and say which point fired", () => {
    const script = `
      import { pino } from "pino";
      import { armFaultPoints, faultPoint } from "./src/fault-points.ts";
      armFaultPoints(new Map([["before-ack", 1]]), pino());
      faultPoint("before-ack");
      console.log("survived");
    `;
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: new URL("..", import.meta.url).pathname,
      encoding: "utf8",
    });
    expect(child.signal).toBe("SIGKILL");
    expect(child.stdout).toContain("fault point before-ack: SIGKILL");
    expect(child.stdout).not.toContain("survived");
  });
});
