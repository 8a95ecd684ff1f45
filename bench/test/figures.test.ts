import { describe, expect, it } from "vitest";
import { withVerdict } from "../physical-limit/figures.js";
import { figureTable } from "../physical-limit/report.js";

const figure = (value: number, unit: "ratio" | "ms", op: ">=" | "<=", target: number) =>
  withVerdict({ name: "f", value, unit, target: { op, value: target }, busy: false, detail: "", latencyMs: {} });

describe("a figure's verdict", () => {
  it("says MET, or MISSED with how far from the target, in the JSON and in the table", () => {
    expect(figure(0.96, "ratio", ">=", 0.95)).toMatchObject({ verdict: "MET" });
    expect(figure(0.96, "ratio", ">=", 0.95).missedBy).toBeUndefined();
    const low = figure(0.845, "ratio", ">=", 0.95);
    expect(low.verdict).toBe("MISSED");
    expect(low.missedBy).toBeCloseTo(0.105, 9);
    const slow = figure(39.5, "ms", "<=", 30);
    expect(slow.missedBy).toBeCloseTo(9.5, 9);
    const table = figureTable([low, slow]);
    expect(table).toContain("**MISSED** by 0.105");
    expect(table).toMatch(/\*\*MISSED\*\* by 9\.5 ms/);
    // A figure that could not be measured is missed by an unknown amount.
    expect(figure(Number.NaN, "ms", "<=", 30)).toMatchObject({ verdict: "MISSED", missedBy: Number.NaN });
  });
});
