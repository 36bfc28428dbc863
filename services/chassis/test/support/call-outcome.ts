import { expect } from "vitest";
import { ConnectError } from "@connectrpc/connect";

/** What a call ended with, and how long it took. */
export interface Outcome<T> {
  value?: T;
  error?: unknown;
  elapsedMs: number;
}

/** Settles a promise into what it resolved with or the error it rejected with. */
export async function settle<T>(promise: Promise<T>): Promise<Outcome<T>> {
  const started = performance.now();
  try {
    const value = await promise;
    return { value, elapsedMs: performance.now() - started };
  } catch (error) {
    return { error, elapsedMs: performance.now() - started };
  }
}

/** Asserts that `error` is a ConnectError and returns it typed. */
export function asConnectError(error: unknown): ConnectError {
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

/** Reads a server stream to its end, recording each message as it arrives. */
export async function readAll<T>(stream: AsyncIterable<T>, onMessage?: (message: T) => void): Promise<T[]> {
  const messages: T[] = [];
  for await (const message of stream) {
    messages.push(message);
    onMessage?.(message);
  }
  return messages;
}

/** A promise with its resolve function outside, for "wait until X happened". */
export function signalled<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
