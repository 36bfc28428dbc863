import { v7 as uuidv7 } from "uuid";

/** A new id: a UUIDv7, so ids sort by creation time. */
export function newId(): string {
  return uuidv7();
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether a string has the shape of a (lower-case) UUID. */
export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}
