import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient as createConnectClient,
  type CallOptions,
  type Client,
  type Transport,
} from "@connectrpc/connect";

type AnyMethod = (input: unknown, options?: CallOptions) => unknown;

/**
 * Connect's `createClient`, except that a caller who stops reading a
 * server or bidi stream early (`break` out of `for await`, or `return`/`throw` in
 * the loop) cancels the call, so the server's handler sees CANCELED and stops.
 * Connect's own client hands out an iterator without `return()`, so the
 * stream would stay open until the server ends it.
 */
export function createClient<T extends DescService>(service: T, transport: Transport): Client<T> {
  const client = createConnectClient(service, transport) as unknown as Record<string, AnyMethod>;
  for (const method of service.methods) {
    if (method.methodKind !== "server_streaming" && method.methodKind !== "bidi_streaming") continue;
    const call = client[method.localName]!;
    client[method.localName] = (input, options) => {
      const controller = new AbortController();
      const outer = options?.signal;
      if (outer?.aborted) controller.abort(outer.reason);
      else outer?.addEventListener("abort", () => controller.abort(outer.reason), { once: true });
      const responses = call(input, { ...options, signal: controller.signal }) as AsyncIterable<unknown>;
      return {
        [Symbol.asyncIterator]() {
          const iterator = responses[Symbol.asyncIterator]();
          let finished = false;
          return {
            next: () =>
              iterator.next().then(
                (result) => {
                  if (result.done) finished = true;
                  return result;
                },
                (error: unknown) => {
                  finished = true;
                  throw error;
                },
              ),
            return: (value?: unknown) => {
              if (!finished) {
                finished = true;
                controller.abort(new ConnectError("the client stopped reading the stream", Code.Canceled));
              }
              return Promise.resolve({ done: true as const, value });
            },
          };
        },
      };
    };
  }
  return client as unknown as Client<T>;
}
