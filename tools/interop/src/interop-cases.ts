import { execFile } from "node:child_process";

/**
 * The cases of gRPC's interop suite that need no credentials, in the order
 * grpc/grpc doc/interop-test-descriptions.md lists them.
 */
export const interopCases = [
  "empty_unary",
  "large_unary",
  "client_streaming",
  "server_streaming",
  "ping_pong",
  "empty_stream",
  "timeout_on_sleeping_server",
  "cancel_after_begin",
  "cancel_after_first_response",
  "status_code_and_message",
  "special_status_message",
  "custom_metadata",
  "unimplemented_method",
  "unimplemented_service",
] as const;

export type InteropCase = (typeof interopCases)[number];

/** One case's outcome, as every client of the suite reports it. */
export interface CaseResult {
  case: string;
  ok: boolean;
  detail?: string;
}

/** Options for {@link runGoClientCase}. */
export interface GoClientOptions {
  /** Path of grpc-go's interop client. */
  client: string;
  host: string;
  port: number;
  /** How long one case may take before it counts as failed (a hung case must not hang the run). */
  timeoutMs?: number;
}

/**
 * Runs one case with grpc-go's interop client against a server: it passes
 * when the client exits 0. A failure's detail is the last line the client
 * printed (it logs the check that failed).
 */
export function runGoClientCase(testCase: string, options: GoClientOptions): Promise<CaseResult> {
  const args = ["-server_host", options.host, "-server_port", String(options.port), "-test_case", testCase];
  return new Promise((resolve) => {
    execFile(
      options.client,
      args,
      { timeout: options.timeoutMs ?? 60_000, killSignal: "SIGKILL", maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ case: testCase, ok: true });
          return;
        }
        const lines = `${stdout}\n${stderr}`.split("\n").filter((line) => line.trim() !== "");
        const why = error.killed ? `no result within ${options.timeoutMs ?? 60_000} ms` : `exit ${error.code ?? "?"}`;
        resolve({ case: testCase, ok: false, detail: [why, lines.at(-1)].filter(Boolean).join(": ") });
      },
    );
  });
}

/** Runs every case in turn, one client process at a time. */
export async function runGoClientCases(
  options: GoClientOptions,
  cases: readonly string[] = interopCases,
): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const testCase of cases) results.push(await runGoClientCase(testCase, options));
  return results;
}
