import { describe, expect, it } from "vitest";
import { Gauge } from "prom-client";
import { createRegistry, renderMetrics } from "../src/index.js";

describe("renderMetrics", () => {
  it("leaves out a metric whose collection fails, counts the failure and serves the rest", async () => {
    const registry = createRegistry("test", { worker: "w-1" });
    new Gauge({ name: "ok_gauge", help: "always there", registers: [registry] }).set(3);
    new Gauge({
      name: "broken_gauge",
      help: "reads a server that is down",
      registers: [registry],
      collect() {
        throw new Error("NATS is unreachable");
      },
    });
    const first = await renderMetrics(registry);
    expect(first).toContain('ok_gauge{service="test",worker="w-1"} 3');
    expect(first).not.toContain("broken_gauge{");
    expect(first).toContain('unclip_metrics_collection_errors_total{metric="broken_gauge",service="test",worker="w-1"} 1');
    expect(await renderMetrics(registry)).toContain(
      'unclip_metrics_collection_errors_total{metric="broken_gauge",service="test",worker="w-1"} 2',
    );
  });
});
