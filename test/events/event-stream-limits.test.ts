// The caps on open event streams, over real gRPC to a real products process:
// a caller (the service its certificate names) past EVENTS_MAX_STREAMS_PER_CALLER, and
// anyone past EVENTS_MAX_STREAMS, gets RESOURCE_EXHAUSTED naming the limit,
// while other callers are still served; and a stream gives its slot back
// whether the reader cancels it or it fails.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { ProductsService } from "@shopmesh/sdk/products/v1";
import { TestMesh } from "../support/mesh.js";

const maxStreams = 5;
const maxStreamsPerCaller = 2;

/** Readers with certificates of their own, each one caller. */
const readers = ["reader-a", "reader-b", "reader-failing", "total-a", "total-b", "total-c", "total-d"];

let mesh: TestMesh;

beforeAll(async () => {
  mesh = await TestMesh.start(
    ["products"],
    {
      products: {
        EVENTS_MAX_STREAMS: String(maxStreams),
        EVENTS_MAX_STREAMS_PER_CALLER: String(maxStreamsPerCaller),
        EVENTS_HEARTBEAT: "10s",
        EVENTS_READERS: readers.join(","),
      },
    },
    { extraIdentities: readers },
  );
});
afterAll(() => mesh?.stop());

/** A products client reading with the certificate of `service`: one caller. */
async function caller(service: string): Promise<Client<typeof ProductsService>> {
  return mesh.client("products", undefined, service);
}

/** An open stream: its first message (the heartbeat) has arrived. */
interface OpenStream {
  cancel(): void;
  /** How the stream ended: its error's code, or "ended". */
  ended: Promise<Code | "ended">;
}

const open = new Set<OpenStream>();
afterEach(() => {
  for (const stream of open) stream.cancel();
  open.clear();
});

/** Opens StreamEvents and waits for its first message; rejects with the call's error when it is refused. */
async function openStream(
  client: Client<typeof ProductsService>,
  options: { afterSequence?: bigint; timeoutMs?: number } = {},
): Promise<OpenStream> {
  const controller = new AbortController();
  const iterator = client
    .streamEvents(
      { afterSequence: options.afterSequence ?? 0n },
      { signal: controller.signal, timeoutMs: options.timeoutMs },
    )
    [Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new Error("the stream ended before its first message");
  const ended = (async () => {
    try {
      while (!(await iterator.next()).done);
      return "ended" as const;
    } catch (error) {
      return ConnectError.from(error).code;
    }
  })();
  const stream = { cancel: () => controller.abort(), ended };
  open.add(stream);
  return stream;
}

/**
 * Opens a stream once the server has let go of streams ended just before:
 * a cancellation reaches the server a moment after the client's abort.
 */
function openOnceFree(client: Client<typeof ProductsService>): Promise<OpenStream> {
  return vi.waitFor(() => openStream(client), { timeout: 10_000, interval: 50 });
}

async function refusal(
  client: Client<typeof ProductsService>,
  options?: { afterSequence?: bigint },
): Promise<ConnectError> {
  try {
    await openStream(client, options);
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the stream was opened but should have been refused");
}

describe("StreamEvents: streams per caller", () => {
  it("refuses a caller's stream past its cap, still serves another caller, and takes a cancelled stream's slot again", async () => {
    const a = await caller("reader-a");
    const b = await caller("reader-b");
    const first = await openOnceFree(a);
    await openOnceFree(a);

    const refused = await refusal(a);
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toBe(`too many event streams for this caller (limit ${maxStreamsPerCaller})`);
    // Another caller is served.
    await openStream(b);

    first.cancel();
    await openOnceFree(a);
    // And the caller is at its cap again.
    expect((await refusal(a)).code).toBe(Code.ResourceExhausted);
  });

  it("gives the slots of failed streams back: after_sequence beyond the head, and a deadline that passed", async () => {
    const a = await caller("reader-failing");
    for (let i = 0; i < maxStreamsPerCaller + 2; i++) {
      expect((await refusal(a, { afterSequence: 1_000n })).code).toBe(Code.OutOfRange);
    }
    const expiring = [await openStream(a, { timeoutMs: 800 }), await openStream(a, { timeoutMs: 800 })];
    expect((await refusal(a)).code).toBe(Code.ResourceExhausted);
    for (const stream of expiring) expect(await stream.ended).toBe(Code.DeadlineExceeded);

    await openOnceFree(a);
    await openOnceFree(a);
    expect((await refusal(a)).code).toBe(Code.ResourceExhausted);
  });
});

describe("StreamEvents: streams in total", () => {
  it("refuses any caller's stream past the total cap, and takes a cancelled stream's slot again", async () => {
    const callers = await Promise.all(["total-a", "total-b", "total-c", "total-d"].map(caller));
    const streams: OpenStream[] = [];
    // Two callers at their own cap and one more stream: five, the total.
    for (const client of [callers[0]!, callers[0]!, callers[1]!, callers[1]!, callers[2]!])
      streams.push(await openOnceFree(client));

    // A caller with no stream at all is refused now.
    const refused = await refusal(callers[3]!);
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toBe(`too many event streams on this server (limit ${maxStreams})`);

    streams[0]!.cancel();
    await openOnceFree(callers[3]!);
    expect((await refusal(callers[2]!)).rawMessage).toBe(`too many event streams on this server (limit ${maxStreams})`);
  });
});
