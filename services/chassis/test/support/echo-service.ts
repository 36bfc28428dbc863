import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { EchoService } from "../../../../gen/shopmesh/echo/v1/echo_pb.js";

/** What the echo handler saw of one call. */
export interface Observation {
  method: string;
  message: string;
  timeoutMs: number | undefined;
  /** When the server's copy of the deadline passes (Date.now() time), if the call has one. */
  deadlineAt: number | undefined;
  header: Record<string, string>;
  aborted?: { afterMs: number; code: Code | undefined };
}

/**
 * An echo service whose behaviour the caller steers with request headers,
 * for testing the chassis:
 * - `x-fail-code` / `x-fail-message`: throw a ConnectError with that code;
 *   with `x-fail-with-request-message` the error's message is the request's
 *   message instead (header values cannot carry arbitrary Unicode);
 * - `x-throw`: throw a plain Error (its text must never reach the client);
 * - `x-wait-for-abort`: wait until the call's signal aborts (deadline or
 *   cancellation) and record when and why;
 * - `x-delay-ms`: take that many milliseconds before answering (Echo), or
 *   before the first message (EchoStream); the wait ends early, with the
 *   abort reason, when the call is aborted;
 * - `x-fail-after`: EchoStream sends that many messages, then fails with
 *   ABORTED and the message "failed after <n> messages";
 * - `x-echo-<name>`: sent back as response header `x-echo-<name>`;
 * - `x-trailer-<name>`: sent back as response trailer `x-trailer-<name>`.
 * Every call is recorded in `observations`.
 */
export function createEchoService(observations: Observation[] = []): ServiceImpl<typeof EchoService> {
  function steer(method: string, message: string, context: HandlerContext): Observation {
    const timeoutMs = context.timeoutMs();
    const observation: Observation = {
      method,
      message,
      timeoutMs,
      deadlineAt: timeoutMs === undefined ? undefined : Date.now() + timeoutMs,
      header: Object.fromEntries(context.requestHeader.entries()),
    };
    observations.push(observation);
    context.requestHeader.forEach((value, key) => {
      if (key.startsWith("x-echo-")) context.responseHeader.set(key, value);
      if (key.startsWith("x-trailer-")) context.responseTrailer.set(key, value);
    });
    const failCode = context.requestHeader.get("x-fail-code");
    if (failCode !== null) {
      const text = context.requestHeader.has("x-fail-with-request-message")
        ? message
        : (context.requestHeader.get("x-fail-message") ?? "failed on request");
      throw new ConnectError(text, Number(failCode) as Code);
    }
    if (context.requestHeader.has("x-throw")) {
      throw new Error("database password is hunter2");
    }
    return observation;
  }

  async function delay(context: HandlerContext) {
    const delayMs = Number(context.requestHeader.get("x-delay-ms") ?? 0);
    if (delayMs <= 0) return;
    try {
      await sleep(delayMs, undefined, { signal: context.signal });
    } catch (error) {
      throw context.signal.aborted ? context.signal.reason : error;
    }
  }

  async function waitForAbort(observation: Observation, context: HandlerContext) {
    const started = performance.now();
    await new Promise<void>((resolve) => {
      if (context.signal.aborted) resolve();
      else context.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    const reason: unknown = context.signal.reason;
    observation.aborted = {
      afterMs: performance.now() - started,
      code: reason instanceof ConnectError ? reason.code : undefined,
    };
    throw reason;
  }

  return {
    async echo(request, context) {
      const observation = steer("Echo", request.message, context);
      await delay(context);
      if (context.requestHeader.has("x-wait-for-abort")) await waitForAbort(observation, context);
      return { message: request.message };
    },
    async *echoStream(request, context) {
      const observation = steer("EchoStream", request.message, context);
      await delay(context);
      const failAfter = context.requestHeader.get("x-fail-after");
      for (let index = 0; index < request.count; index++) {
        if (failAfter !== null && index === Number(failAfter)) {
          throw new ConnectError(`failed after ${index} messages`, Code.Aborted);
        }
        if (index > 0 && request.intervalMs > 0) await sleep(request.intervalMs, undefined, { signal: context.signal });
        yield { message: request.message, index };
      }
      if (context.requestHeader.has("x-wait-for-abort")) await waitForAbort(observation, context);
    },
  };
}
