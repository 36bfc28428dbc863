import { ConnectError } from "@connectrpc/connect";

/** Awaits a call that must fail and returns its ConnectError; throws when the call succeeds. */
export async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded but should have failed");
}
