import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError, parseDurationMs, targetForm } from "@shopmesh/chassis";
import { isGrpcTarget } from "@shopmesh/sdk";

/** A command line that cannot be used; its message is one line that names the option. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * util.parseArgs in strict mode (unknown options and missing values are
 * errors), with its errors turned into a {@link UsageError} of one line, e.g.
 * "unknown option '--foo'".
 */
export function parseCommandLine<const T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ strict: true, ...config });
  } catch (error) {
    if (!(error instanceof Error) || !("code" in error) || !String(error.code).startsWith("ERR_PARSE_ARGS"))
      throw error;
    // Node's messages go on with advice about "--" after the first sentence.
    const first = error.message.split(/\.\s/)[0]!;
    throw new UsageError(first.charAt(0).toLowerCase() + first.slice(1));
  }
}

/** Prints "shopmesh <command>: <message>" and where to find the options; returns exit code 2. */
export function usageFailure(command: string, error: unknown): number {
  // A variable the command reads (SHOPMESH_PORT_BASE, TLS) is part of how it was called.
  if (!(error instanceof UsageError) && !(error instanceof ConfigError)) throw error;
  process.stderr.write(`shopmesh ${command}: ${error.message}\nRun 'shopmesh ${command} --help' for its options.\n`);
  return 2;
}

/** A server's address given as `--flag`: host:port, or a grpc-js target with its scheme. */
export function targetOption(flag: string, text: string): string {
  if (!isGrpcTarget(text)) throw new UsageError(`--${flag}: "${text}" is not ${targetForm}`);
  return text;
}

/** A number in decimal digits, with or without a fraction ("2", "2.5", ".5"): Number() would also take "0x1", "1e-1" and " 1". */
const decimal = /^(\d+(\.\d*)?|\.\d+)$/;
/** A whole number in decimal digits. */
const wholeDecimal = /^\d+$/;

/** A fraction from 0 to 1 given as `--flag`, or `fallback` when absent. */
export function fractionOption(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = decimal.test(text) ? Number(text) : Number.NaN;
  if (!(value >= 0 && value <= 1)) {
    throw new UsageError(`--${flag}: "${text}" is not a fraction from 0 to 1 (0.2 is 20 % of calls)`);
  }
  return value;
}

/** A duration such as 300ms or 2s given as `--flag`, in milliseconds; `fallback` when absent. */
export function durationOption(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  // With its unit: a bare number, which the environment's durations read as ms, could be meant as seconds.
  const value = /[a-z]$/i.test(text) ? parseDurationMs(text) : undefined;
  if (value === undefined) throw new UsageError(`--${flag}: "${text}" is not a duration such as 300ms or 2s`);
  return value;
}

/** A number from `min` to `max` given as `--flag`, in decimal digits (`whole` ones only, or with a fraction). */
export function numberOption(flag: string, text: string, min: number, max: number, whole = false): number {
  const value = (whole ? wholeDecimal : decimal).test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max))
    throw new UsageError(`--${flag}: expected a ${whole ? "whole " : ""}number from ${min} to ${max}, got ${text}`);
  return value;
}

/** A port from 1024 to 65535 (minus `room` for the ports that follow it) given as `--flag`; `fallback` when absent. */
export function portOption(flag: string, text: string | undefined, fallback: number, room = 0): number {
  if (text === undefined) return fallback;
  const value = wholeDecimal.test(text) ? Number(text) : Number.NaN;
  const max = 65_535 - room;
  if (!(value >= 1024 && value <= max)) throw new UsageError(`--${flag}: "${text}" is not a port from 1024 to ${max}`);
  return value;
}
