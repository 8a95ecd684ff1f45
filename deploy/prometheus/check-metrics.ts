/**
 * Keeps the monitoring files honest against the code (`npm run check:metrics`, run by .ci/run):
 *
 * - every metric that the alerts (alerts.yaml), the recording rules (recording-rules.yaml) and the Grafana dashboard
 *   (../grafana/unclip-farm.json: panel queries and template variables) read is exported by the code: a
 *   `name: "..."` metric definition in packages/ or services/ sources (histograms also as _bucket, _sum, _count),
 *   one of prom-client's default metrics as createRegistry() keeps them, a series Prometheus adds itself (up,
 *   scrape_*), or a recording rule's output;
 * - alerts.yaml reads raw metrics only (no recording-rule output), so that it works loaded alone;
 * - every alert has a runbook_url to a section of docs/operations.md that exists, and a `promtool test rules` test
 *   in tests/*.yaml with both a firing and a not-firing case.
 *
 * It prints what it checked and exits 1 listing every problem. The rules files are read with a small line parser
 * made for their layout (`- alert:`/`- record:` first, then `expr:` as a plain, quoted or block scalar); anything it
 * cannot read is reported as a problem rather than skipped.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRegistry } from "../../packages/core/src/metrics.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const rel = (file: string) => path.relative(root, file);
const PROM_DIR = path.join(root, "deploy/prometheus");
const ALERTS = path.join(PROM_DIR, "alerts.yaml");
const RECORDING = path.join(PROM_DIR, "recording-rules.yaml");
const TESTS_DIR = path.join(PROM_DIR, "tests");
const DASHBOARD = path.join(root, "deploy/grafana/unclip-farm.json");
const RUNBOOK = path.join(root, "docs/operations.md");
const RUNBOOK_URL = "https://github.com/unclip-farm/unclip-farm/blob/main/docs/operations.md#";

/** Series Prometheus itself adds to every target, and its alert state series. */
const PROMETHEUS_SERIES = [
  "up",
  "scrape_duration_seconds",
  "scrape_samples_scraped",
  "scrape_samples_post_metric_relabeling",
  "scrape_series_added",
  "ALERTS",
  "ALERTS_FOR_STATE",
];

const problems: string[] = [];

// ---------------------------------------------------------------------------------------------------------------
// PromQL: the metric names an expression reads.

const KEYWORDS = new Set(["and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan"]);

/**
 * Metric names in a PromQL expression (Grafana variables allowed): identifiers that are not keywords, functions or
 * aggregations (followed by "("), label names (inside {...} and grouping clauses), strings, durations or numbers.
 */
function metricNames(expr: string): string[] {
  const names = new Set<string>();
  // Exact __name__ matchers name a metric too; a regex on __name__ cannot be checked.
  for (const m of expr.matchAll(/__name__\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
    if (m[1] === "=") names.add(m[2]!);
    else throw new Error(`cannot check a __name__${m[1]} matcher: ${expr}`);
  }
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings
    .replace(/#[^\n]*/g, "") // comments
    .replace(/\{[^{}]*\}/g, " ") // label matchers
    .replace(/\[[^\][]*\]/g, " ") // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/g, " ") // grouping clauses
    .replace(/\$\{[^}]*\}|\$\w+/g, " "); // Grafana variables
  s = s.replace(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g, (match, name: string, call?: string) => {
    if (!call && !KEYWORDS.has(name.toLowerCase())) names.add(name);
    return " ";
  });
  return [...names];
}

/** Metric names a Grafana template variable's query reads (label_values, query_result, metrics). */
function variableMetricNames(query: string): string[] {
  const q = query.trim();
  let m = /^label_values\(\s*(.*?)\s*,\s*[a-zA-Z_]\w*\s*\)$/s.exec(q);
  if (m) return metricNames(m[1]!);
  if (/^label_values\(\s*[a-zA-Z_]\w*\s*\)$/.test(q) || /^(metrics|label_names)\(/.test(q)) return [];
  m = /^query_result\((.*)\)$/s.exec(q);
  if (m) return metricNames(m[1]!);
  return metricNames(q);
}

function selfTest(): void {
  const cases: [string, string[]][] = [
    ['sum by (pool) (max by (pool, lane) (deriv(unclip_queue_backlog_tasks{lane="batch"}[10m]))) > 0', ["unclip_queue_backlog_tasks"]],
    ["histogram_quantile(0.95, sum by (le) (rate(a_bucket[$__rate_interval]))) > 1e3", ["a_bucket"]],
    ["x unless on (pool) max by (pool) (y) > 0 and on() absent(z)", ["x", "y", "z"]],
    ['pool:foo:sum{pool=~"$pool"} / ignoring(le) group_left bar offset 5m', ["pool:foo:sum", "bar"]],
    ['sum(rate(m_total[5m])) without (instance) == bool Inf', ["m_total"]],
  ];
  for (const [expr, want] of cases) {
    const got = metricNames(expr);
    if (got.join() !== want.join()) throw new Error(`metricNames self-test: ${expr}: got [${got}], want [${want}]`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Rules files.

interface Rule {
  kind: "alert" | "record";
  name: string;
  expr: string;
  runbookUrl?: string;
  file: string;
  line: number;
}

function scalar(raw: string, file: string, line: number): string {
  const v = raw.trim();
  if (v.startsWith('"')) return JSON.parse(v) as string;
  if (v.startsWith("'")) return v.slice(1, -1).replace(/''/g, "'");
  if (/^[|>]/.test(v)) throw new Error(`${rel(file)}:${line}: unexpected block scalar`);
  return v.replace(/\s+#.*$/, "");
}

function readRules(file: string): Rule[] {
  const lines = readFileSync(file, "utf8").split("\n");
  const rules: Rule[] = [];
  let current: Rule | undefined;
  let starts = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const head = /^\s*- (alert|record):\s*(.*)$/.exec(line);
    if (head) {
      starts++;
      current = { kind: head[1] as Rule["kind"], name: scalar(head[2]!, file, i + 1), expr: "", file, line: i + 1 };
      rules.push(current);
      continue;
    }
    const expr = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (expr) {
      if (!current || current.expr) {
        problems.push(`${rel(file)}:${i + 1}: an expr: that does not follow its rule's "- alert:" or "- record:" line`);
        continue;
      }
      const indent = expr[1]!.length;
      const value = expr[2]!.trim();
      if (/^[|>][-+]?$/.test(value)) {
        const body: string[] = [];
        while (i + 1 < lines.length && (lines[i + 1]!.trim() === "" || /^\s*/.exec(lines[i + 1]!)![0].length > indent)) body.push(lines[++i]!);
        current.expr = body.join("\n").trim();
      } else {
        current.expr = scalar(value, file, i + 1);
      }
      continue;
    }
    const runbook = /^\s*runbook_url:\s*(.*)$/.exec(line);
    if (runbook && current) current.runbookUrl = scalar(runbook[1]!, file, i + 1);
  }
  if (starts === 0) problems.push(`${rel(file)}: no rules found`);
  for (const r of rules) if (!r.expr) problems.push(`${rel(file)}:${r.line}: ${r.kind} ${r.name} has no expr this check can read`);
  return rules;
}

// ---------------------------------------------------------------------------------------------------------------
// What the code exports.

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!["node_modules", "test", "tests", "gen", "dist"].includes(entry.name)) out.push(...sourceFiles(full));
    } else if (/\.(ts|js|mts)$/.test(entry.name) && !/\.(test|spec)\.[mc]?[tj]s$/.test(entry.name) && !entry.name.endsWith(".d.ts")) {
      out.push(full);
    }
  }
  return out;
}

const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];

async function exportedMetrics(): Promise<Map<string, string>> {
  /** metric name → where it comes from */
  const known = new Map<string, string>();
  const add = (name: string, from: string, type?: string) => {
    known.set(name, from);
    if (type === "histogram") for (const s of HISTOGRAM_SUFFIXES) known.set(name + s, from);
    if (type === "summary") for (const s of ["_sum", "_count"]) known.set(name + s, from);
  };
  const files = ["packages", "services"].flatMap((d) =>
    readdirSync(path.join(root, d), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .flatMap((e) => {
        try {
          return sourceFiles(path.join(root, d, e.name, "src"));
        } catch {
          return [];
        }
      }),
  );
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/\bname:\s*["'`]([a-zA-Z_:][a-zA-Z0-9_:]*)["'`]/g)) {
      const name = m[1]!;
      if (!name.startsWith("unclip_")) continue;
      // The constructor the definition belongs to: the nearest `new X(` before it.
      const before = text.slice(Math.max(0, m.index! - 300), m.index!);
      const ctor = [...before.matchAll(/new\s+(Counter|Gauge|Histogram|Summary)\b/g)].pop()?.[1];
      add(name, rel(file), ctor?.toLowerCase());
    }
  }
  // What createRegistry() registers in every farm process: prom-client's default metrics (less the ones it removes) and
  // unclip_metrics_collection_errors_total.
  const registry = createRegistry("check-metrics");
  for (const metric of await registry.getMetricsAsJSON()) add(metric.name, "createRegistry() (prom-client defaults and the collection error counter)", String(metric.type));
  registry.clear();
  for (const name of PROMETHEUS_SERIES) add(name, "Prometheus");
  return known;
}

// ---------------------------------------------------------------------------------------------------------------
// Runbook anchors (GitHub's heading slugs) and alert tests.

function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** alert name → which kinds of cases the tests hold for it. */
function alertTests(): Map<string, { firing: boolean; quiet: boolean; files: Set<string> }> {
  const cases = new Map<string, { firing: boolean; quiet: boolean; files: Set<string> }>();
  for (const name of readdirSync(TESTS_DIR).filter((f) => /\.ya?ml$/.test(f))) {
    const text = readFileSync(path.join(TESTS_DIR, name), "utf8");
    // Each `- eval_time:` item of an alert_rule_test names one alert and its expected alerts.
    for (const chunk of text.split(/^\s*- eval_time:/m).slice(1)) {
      const alert = /^\s*alertname:\s*(\S+)/m.exec(chunk)?.[1];
      if (!alert) continue;
      const entry = cases.get(alert) ?? { firing: false, quiet: false, files: new Set<string>() };
      const body = chunk.split(/^\s*(?:- interval:|input_series:|promql_expr_test:)/m)[0]!;
      if (/^\s*exp_alerts:\s*\[\s*\]/m.test(body) || !/exp_alerts:/.test(body)) entry.quiet = true;
      else if (/exp_labels:/.test(body)) entry.firing = true;
      entry.files.add(name);
      cases.set(alert, entry);
    }
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  selfTest();
  const known = await exportedMetrics();
  const alerts = readRules(ALERTS);
  const records = readRules(RECORDING);
  for (const r of alerts) if (r.kind !== "alert") problems.push(`${rel(r.file)}:${r.line}: recording rule ${r.name} belongs in recording-rules.yaml`);
  for (const r of records) if (r.kind !== "record") problems.push(`${rel(r.file)}:${r.line}: alert ${r.name} belongs in alerts.yaml`);
  const recorded = new Set(records.filter((r) => r.kind === "record").map((r) => r.name));

  /** Metric name → where it is used, for the ones nobody exports. */
  const unknown = new Map<string, Set<string>>();
  let uses = 0;
  const check = (expr: string, where: string, allowRecorded: boolean) => {
    let names: string[];
    try {
      names = metricNames(expr);
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
      return;
    }
    for (const name of names) {
      uses++;
      if (known.has(name)) continue;
      if (recorded.has(name)) {
        if (!allowRecorded) problems.push(`${where}: reads the recording rule ${name}; alerts.yaml must work without recording-rules.yaml`);
        continue;
      }
      if (!unknown.has(name)) unknown.set(name, new Set());
      unknown.get(name)!.add(where);
    }
  };
  for (const r of alerts) check(r.expr, `${rel(r.file)}:${r.line} (alert ${r.name})`, false);
  for (const r of records) check(r.expr, `${rel(r.file)}:${r.line} (record ${r.name})`, true);

  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    panels?: unknown[];
    templating?: { list?: { name: string; type: string; query?: string | { query?: string }; definition?: string }[] };
  };
  let panelQueries = 0;
  const walk = (node: unknown, title: string) => {
    if (Array.isArray(node)) for (const n of node) walk(n, title);
    else if (node && typeof node === "object") {
      const o = node as Record<string, unknown>;
      const here = typeof o.title === "string" && "gridPos" in o ? o.title : title;
      if (typeof o.expr === "string") {
        panelQueries++;
        check(o.expr, `${rel(DASHBOARD)} (panel "${here}")`, true);
      }
      for (const [k, v] of Object.entries(o)) if (k !== "templating") walk(v, here);
    }
  };
  walk(dashboard.panels, "");
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== "query") continue;
    const query = typeof v.query === "string" ? v.query : (v.query?.query ?? v.definition ?? "");
    for (const name of variableMetricNames(query)) {
      uses++;
      if (known.has(name) || recorded.has(name)) continue;
      if (!unknown.has(name)) unknown.set(name, new Set());
      unknown.get(name)!.add(`${rel(DASHBOARD)} (variable $${v.name})`);
    }
  }
  for (const [name, where] of [...unknown].sort()) {
    problems.push(`unknown metric ${name} (no code exports it), used in: ${[...where].join("; ")}`);
  }

  // Runbooks and tests.
  let runbook = "";
  try {
    runbook = readFileSync(RUNBOOK, "utf8");
  } catch {
    problems.push(`${rel(RUNBOOK)} is missing`);
  }
  const anchors = headingAnchors(runbook);
  const tests = alertTests();
  for (const a of alerts.filter((r) => r.kind === "alert")) {
    const where = `${rel(a.file)}:${a.line} (alert ${a.name})`;
    if (!a.runbookUrl) problems.push(`${where}: no runbook_url annotation`);
    else if (!a.runbookUrl.startsWith(RUNBOOK_URL)) problems.push(`${where}: runbook_url ${a.runbookUrl} does not start with ${RUNBOOK_URL}`);
    else if (!anchors.has(a.runbookUrl.slice(RUNBOOK_URL.length))) {
      problems.push(`${where}: runbook_url points to #${a.runbookUrl.slice(RUNBOOK_URL.length)}, which is no heading of ${rel(RUNBOOK)}`);
    }
    const t = tests.get(a.name);
    if (!t) problems.push(`${where}: no test in ${rel(TESTS_DIR)}/ (alert_rule_test with alertname: ${a.name})`);
    else {
      if (!t.firing) problems.push(`${where}: its tests have no firing case (exp_alerts with exp_labels)`);
      if (!t.quiet) problems.push(`${where}: its tests have no not-firing case (exp_alerts: [])`);
    }
  }
  for (const name of tests.keys()) {
    if (!alerts.some((a) => a.name === name)) problems.push(`${rel(TESTS_DIR)}: tests an alert ${name} that alerts.yaml does not define`);
  }

  const alertCount = alerts.filter((r) => r.kind === "alert").length;
  console.log(
    `check-metrics: ${known.size} exported metric names; ${alertCount} alerts, ${recorded.size} recording rules, ` +
      `${panelQueries} dashboard queries: ${uses} metric references checked`,
  );
  if (problems.length > 0) {
    console.error(`check-metrics: ${problems.length} problem(s):`);
    for (const p of problems) console.error(`  - ${p}`);
    process.exit(1);
  }
  console.log("check-metrics: OK (every metric exists, every alert has a runbook section and firing/not-firing tests)");
}

await main();
