import { describe, expect, it } from "vitest";
import { parsePrometheusText } from "../src/prometheus-text.js";

describe("parsePrometheusText", () => {
  it("reads samples with labels, skipping comments, and keeps +Inf buckets", () => {
    const samples = parsePrometheusText(
      [
        "# HELP rpc_client_duration_seconds x",
        "# TYPE rpc_client_duration_seconds histogram",
        'rpc_client_duration_seconds_bucket{le="0.005",dependency="products",rpc_grpc_status_code="0"} 3',
        'rpc_client_duration_seconds_bucket{le="+Inf",dependency="products",rpc_grpc_status_code="0"} 4',
        "process_cpu_seconds_total 1.5",
        'odd{message="a \\"quoted\\" word"} 2',
      ].join("\n"),
    );
    expect(samples).toEqual([
      {
        name: "rpc_client_duration_seconds_bucket",
        labels: { le: "0.005", dependency: "products", rpc_grpc_status_code: "0" },
        value: 3,
      },
      {
        name: "rpc_client_duration_seconds_bucket",
        labels: { le: "+Inf", dependency: "products", rpc_grpc_status_code: "0" },
        value: 4,
      },
      { name: "process_cpu_seconds_total", labels: {}, value: 1.5 },
      { name: "odd", labels: { message: 'a "quoted" word' }, value: 2 },
    ]);
  });

  it("skips a line that does not parse rather than the scrape", () => {
    expect(parsePrometheusText('broken{le="1" 3\nok 1')).toEqual([{ name: "ok", labels: {}, value: 1 }]);
  });
});
