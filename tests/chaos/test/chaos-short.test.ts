import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "@unclip/devstack";
import { markdownTable, writeReport } from "../src/chaos-report.js";
import { SHORT_PLAN } from "../src/chaos-plans.js";
import { runChaos } from "../src/chaos-run.js";

const OUT = path.join(repoRoot, "out", "chaos", "short");

describe("the short chaos run (npm run chaos is the long one)", () => {
  it("ends every job once, with the fault-free run's bytes, through one fault of each kind", async () => {
    const lines: string[] = [];
    const report = await runChaos({ ...SHORT_PLAN, logDir: path.join(OUT, "logs"), log: (line) => lines.push(line) });
    await writeReport(report, OUT);
    console.log(`${markdownTable(report.rows)}\n\n${lines.join("\n")}`);

    const injected = (kind: string) => report.faults.filter((f) => f.kind === kind).length;
    for (const kind of ["nats-restart", "s3-down", "s3-stall", "gateway-sigkill"]) expect(injected(kind), kind).toBe(1);
    expect(injected("worker-sigkill")).toBeGreaterThanOrEqual(1);
    // Every outage ended: the servers came back.
    expect(report.faults.filter((f) => f.target === "s3" || f.target === "nats-server").every((f) => f.until !== undefined)).toBe(true);
    expect(report.verdicts).toHaveLength(SHORT_PLAN.jobs);
    expect(report.violations).toEqual([]);
    expect(report.rows.at(-1)).toMatchObject({ succeeded: SHORT_PLAN.jobs, lost: 0, duplicates: 0, mismatches: 0, suspicious: 0 });
  });
});
