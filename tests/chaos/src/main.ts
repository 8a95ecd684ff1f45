import path from "node:path";
import { parseArgs } from "node:util";
import { repoRoot } from "@unclip/devstack";
import { markdownTable, writeReport } from "./chaos-report.js";
import { FULL_PLAN, SHORT_PLAN } from "./chaos-plans.js";
import { runChaos } from "./chaos-run.js";

/** The whole run, farms included, ends by this time whatever happens (the services die with this process). */
const CAP_MS = 15 * 60_000;

const { values } = parseArgs({
  options: {
    jobs: { type: "string" },
    seed: { type: "string" },
    out: { type: "string" },
    short: { type: "boolean" },
  },
});
const positive = (name: string, raw: string | undefined, fallback: number) => {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} must be a positive integer, not ${JSON.stringify(raw)}`);
    process.exit(64);
  }
  return v;
};
const out = path.resolve(values.out ?? path.join(repoRoot, "out", "chaos"));

const cap = setTimeout(() => {
  console.error(`chaos: the run passed its ${String(CAP_MS / 60_000)} min cap; stopping`);
  process.exit(2);
}, CAP_MS);
cap.unref();
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

const plan = values.short ? SHORT_PLAN : FULL_PLAN;
const started = Date.now();
const report = await runChaos({
  ...plan,
  jobs: positive("jobs", values.jobs, plan.jobs),
  seed: positive("seed", values.seed, plan.seed),
  logDir: path.join(out, "logs"),
  log: (line) => console.error(line),
});
await writeReport(report, out);
console.log(markdownTable(report.rows));
for (const v of report.violations) console.log(`VIOLATION: ${v}`);
console.log(
  `\n${report.violations.length === 0 ? "PASSED" : `FAILED: ${String(report.violations.length)} violation(s)`} in ` +
    `${((Date.now() - started) / 1000).toFixed(0)} s; report in ${path.relative(process.cwd(), path.join(out, "chaos.md"))}`,
);
process.exit(report.violations.length === 0 ? 0 : 1);
