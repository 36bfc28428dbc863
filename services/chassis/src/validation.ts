import { Code, ConnectError } from "@connectrpc/connect";
import { codes as currencyCodes } from "currency-codes";
import { isUuid } from "./ids.js";

/**
 * Request validation. Every failure is INVALID_ARGUMENT with a message that
 * starts with the field's name as the contract spells it, e.g.
 * `items[2].quantity: must be from 1 to 1000`.
 */
export function invalidArgument(field: string, problem: string): ConnectError {
  return new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
}

/**
 * Characters no name or description needs, and which could make two texts
 * that look the same differ, or a text look other than it is:
 * - control and format characters (Unicode Cc and Cf): NUL, BEL,
 *   zero-width spaces and joiners, bidirectional overrides;
 * - line and paragraph separators (Zl, Zp), line breaks by another name;
 * - private-use code points (Co), whose look depends on the font, and
 *   noncharacters (U+FFFE, U+FFFF and the like), which mean nothing;
 * - lone surrogates (Cs), which JSON's `\uD800` escapes can carry and
 *   which UTF-8 cannot: stored, they would come back as U+FFFD.
 */
const hiddenOrMeaningless = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}\p{Noncharacter_Code_Point}]/u;
/** The same, less the line breaks and tabs that a longer text may hold. */
const hiddenOrMeaninglessInLines = /(?![\n\r\t])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}\p{Noncharacter_Code_Point}]/u;

/**
 * Checks a text field's length (in characters) after trimming, and that it
 * holds none of the characters above (a `multiline` text may hold line
 * breaks and tabs); returns it trimmed.
 */
export function checkText(
  field: string,
  value: string,
  limits: { min?: number; max: number; multiline?: boolean },
): string {
  refuseCodePoints(field, value, limits.multiline ? hiddenOrMeaninglessInLines : hiddenOrMeaningless);
  const text = value.trim();
  const min = limits.min ?? 1;
  const length = [...text].length;
  if (length < min) throw invalidArgument(field, min === 1 ? "is required" : `must be at least ${min} characters`);
  if (length > limits.max) throw invalidArgument(field, `must be at most ${limits.max} characters`);
  return text;
}

function refuseCodePoints(field: string, value: string, pattern: RegExp): void {
  const found = pattern.exec(value);
  if (found) {
    const codePoint = found[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
    throw invalidArgument(
      field,
      `must not contain control, invisible, separator, private-use or noncharacter code points (found U+${codePoint})`,
    );
  }
}

/**
 * Checks a client-chosen key that is compared exactly, such as an
 * idempotency key: 1 to `max` characters, returned unchanged. Trimming it
 * would make "  k  " and "k" one key, and keeping the spaces would make them
 * two keys a person cannot tell apart, so white space at either end is
 * refused instead, as are control and invisible characters anywhere.
 */
export function checkKey(field: string, value: string, limits: { max: number }): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (value.trim() !== value) throw invalidArgument(field, "must not begin or end with white space");
  refuseCodePoints(field, value, hiddenOrMeaningless);
  if ([...value].length > limits.max) throw invalidArgument(field, `must be at most ${limits.max} characters`);
  return value;
}

/** The currency codes of ISO 4217, as the currency-codes package lists them. */
const isoCurrencies = new Set(currencyCodes());

/** Checks an ISO 4217 currency code (upper case, e.g. "EUR"); returns it. */
export function checkCurrencyCode(field: string, value: string): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (!isoCurrencies.has(value)) throw invalidArgument(field, "must be an ISO 4217 currency code such as EUR or USD");
  return value;
}

/** Checks that a field holds an id as the services issue them (a UUID). */
export function checkId(field: string, value: string): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (!isUuid(value)) throw invalidArgument(field, "is not a valid id");
  return value;
}

/** Checks a list of ids: its size, each id, and drops repeats (keeping first-seen order). */
export function checkIds(field: string, values: readonly string[], limits: { max: number }): string[] {
  if (values.length === 0) throw invalidArgument(field, "must name at least one id");
  if (values.length > limits.max) throw invalidArgument(field, `must name at most ${limits.max} ids`);
  for (const [index, value] of values.entries()) checkId(`${field}[${index}]`, value);
  return [...new Set(values)];
}

/** Checks a whole number lies in a range; `otherwise` names a value the range leaves out on purpose. */
export function checkRange(field: string, value: number, min: number, max: number, otherwise = ""): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(field, `must be from ${min} to ${max}${otherwise}`);
  }
  return value;
}

/** Checks a page size; 0 means the default. */
export function checkPageSize(field: string, value: number, limits: { fallback: number; max: number }): number {
  if (value === 0) return limits.fallback;
  return checkRange(field, value, 1, limits.max, `, or 0 for the default (${limits.fallback})`);
}

/** Page tokens are opaque to clients: base64url JSON of where the next page starts. */
export function encodePageToken(cursor: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

/**
 * The cursor of a page token from {@link encodePageToken}. A token that does
 * not decode to the expected shape is INVALID_ARGUMENT, never a crash; a
 * field of shape "id" must hold an id such as this service issues, so that
 * a made-up cursor ("", "zzz") is refused rather than read as a place in
 * the list.
 */
export function decodePageToken<T extends Record<string, string | number>>(
  field: string,
  token: string,
  shape: { [K in keyof T]: T[K] extends number ? "number" : "string" | "id" },
): T | undefined {
  if (token === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw invalidArgument(field, "is not a token this service issued");
  }
  if (typeof value !== "object" || value === null) throw invalidArgument(field, "is not a token this service issued");
  for (const [key, type] of Object.entries(shape)) {
    const held = (value as Record<string, unknown>)[key];
    const fits = type === "id" ? typeof held === "string" && isUuid(held) : typeof held === type;
    if (!fits) throw invalidArgument(field, "is not a token this service issued");
  }
  return value as T;
}
