import { describe, expect, it } from "vitest";
import { formatRows } from "../src/result-table.js";

describe("formatRows", () => {
  it("prints one aligned line per case, a failure's detail, and a count per server and client pair", () => {
    const text = formatRows([
      { server: "chassis", client: "grpc-go", case: "empty_unary", ok: true },
      { server: "chassis", client: "grpc-go", case: "ping_pong", ok: false, detail: "exit 1: wrong size" },
      { server: "grpc-go", client: "SDK grpc-js", case: "empty_unary", ok: true },
    ]);
    expect(text.split("\n")).toEqual([
      "server   client       case         result",
      "chassis  grpc-go      empty_unary  pass",
      "chassis  grpc-go      ping_pong    FAIL (exit 1: wrong size)",
      "grpc-go  SDK grpc-js  empty_unary  pass",
      "",
      "1/2 passed: chassis <- grpc-go",
      "1/1 passed: grpc-go <- SDK grpc-js",
    ]);
  });
});
