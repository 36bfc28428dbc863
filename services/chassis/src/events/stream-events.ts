import type { DescMessage } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { requirePeerService } from "../auth/peer-identity.js";
import { serverStopping } from "../server/call-context.js";
import type { EventLog, EventStreamMessage } from "./event-log.js";

/**
 * The StreamEvents handler of a service whose changes go to `log`: for the
 * log's readers only (user-orders unless EVENTS_READERS says otherwise),
 * identified by their certificates over mutual TLS, replaying after the position asked
 * for and then following new commits, until the caller goes away or the
 * server stops. Each caller (the certificate's service) may hold a few streams at once and the
 * server a few dozen (see EventLog.slots); past either cap the call
 * fails with RESOURCE_EXHAUSTED.
 */
export function streamEventsHandler<Desc extends DescMessage>(
  log: EventLog<Desc>,
): (request: { afterSequence: bigint }, context: HandlerContext) => AsyncIterable<EventStreamMessage<Desc>> {
  return (request, context) => {
    const caller = requirePeerService(context, log.readers);
    return log.follow(request.afterSequence, context.signal, {
      stopping: serverStopping(context),
      caller,
    });
  };
}
