import type { DescMessage } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { requireServiceOrAdmin } from "../auth/principal.js";
import { serverStopping } from "../server/call-context.js";
import type { EventLog, EventStreamMessage } from "./event-log.js";

/**
 * The StreamEvents handler of a service whose changes go to `log`: for
 * admins and services only, replaying after the position asked for and then
 * following new commits, until the caller goes away or the server stops.
 * Each caller (the token's subject) may hold a few streams at once and the
 * server a few dozen (see EventLog.slots); past either cap the call
 * fails with RESOURCE_EXHAUSTED.
 */
export function streamEventsHandler<Desc extends DescMessage>(
  log: EventLog<Desc>,
): (request: { afterSequence: bigint }, context: HandlerContext) => AsyncIterable<EventStreamMessage<Desc>> {
  return (request, context) => {
    const caller = requireServiceOrAdmin(context);
    return log.follow(request.afterSequence, context.signal, {
      stopping: serverStopping(context),
      caller: caller.userId,
    });
  };
}
