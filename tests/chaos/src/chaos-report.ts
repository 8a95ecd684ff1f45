import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { FaultRow } from "./chaos-analysis.js";
import type { ChaosReport } from "./chaos-run.js";

const COLUMNS: readonly [keyof FaultRow, string][] = [
  ["kind", "fault"],
  ["injections", "injections"],
  ["jobsAffected", "jobs affected"],
  ["taskRetries", "task retries"],
  ["clientRetries", "client retries"],
  ["succeeded", "succeeded"],
  ["failedPermanent", "failed (faults used up its deliveries)"],
  ["failed", "failed (other)"],
  ["lost", "lost"],
  ["duplicates", "duplicates"],
  ["mismatches", "byte mismatches"],
  ["suspicious", "suspicious redeliveries"],
  ["maxLatencyS", "max job latency (s)"],
];

/** The fault table as Markdown. */
export function markdownTable(rows: readonly FaultRow[]): string {
  const lines = [
    `| ${COLUMNS.map(([, title]) => title).join(" | ")} |`,
    `|${COLUMNS.map(([key]) => (key === "kind" ? " --- " : " ---: ")).join("|")}|`,
  ];
  for (const r of rows) lines.push(`| ${COLUMNS.map(([key]) => String(r[key])).join(" | ")} |`);
  return lines.join("\n");
}

export function markdownReport(report: ChaosReport): string {
  const o = report.options;
  const passed = report.violations.length === 0;
  return [
    `# Chaos suite: ${passed ? "PASSED" : `FAILED (${String(report.violations.length)} violation(s))`}`,
    "",
    `${String(o.jobs)} jobs (generate/variations/edit, 64/256/1024 px, seed ${String(o.seed)}), ` +
      `${String(o.workersPerPool)} workers per pool, ack wait ${String(o.ackWaitMs)} ms; ` +
      `fault-free run ${report.baselineSeconds.toFixed(0)} s, chaos run ${report.chaosSeconds.toFixed(0)} s.`,
    `Worker fault points: \`${o.workerFaultPoints || "none"}\`; gateway fault points: \`${o.gatewayFaultPoints || "none"}\`.`,
    "",
    "Each row counts the jobs a kind of fault touched: a task retry it explains, or (outages, gateway deaths) the job running while it lasted.",
    "",
    markdownTable(report.rows),
    "",
    ...(passed ? [] : ["## Violations", "", ...report.violations.map((v) => `- ${v}`), ""]),
    "## Faults",
    "",
    ...report.faults.map(
      (f) =>
        `- ${new Date(f.at).toISOString().slice(11, 23)} ${f.kind} ${f.target}${f.pid === undefined ? "" : ` (pid ${String(f.pid)})`}` +
        `${f.until === undefined ? "" : `, ${((f.until - f.at) / 1000).toFixed(1)} s until back`}${f.detail ? `: ${f.detail}` : ""}`,
    ),
    "",
  ].join("\n");
}

/** Writes chaos.md and chaos.json into dir. */
export async function writeReport(report: ChaosReport, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "chaos.md"), markdownReport(report));
  await writeFile(path.join(dir, "chaos.json"), JSON.stringify(report, null, 2));
}
