import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

/**
 * The largest typed array V8 keeps inside its own heap. Wrapping such an
 * array in a Buffer asks it for its ArrayBuffer, which makes V8 move the bytes
 * to a block of their own outside the heap: allocated by this thread and freed
 * by a garbage collector thread, a cost well above copying the few bytes into
 * Node's shared buffer pool.
 */
const inHeapMaxBytes = 64;

/**
 * A message's binary encoding as the Buffer grpc-js sends: copied into Node's
 * buffer pool when it is small, and wrapped without a copy otherwise.
 *
 * @internal
 */
export function encodeMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Buffer {
  const bytes = toBinary(schema, message);
  return bytes.byteLength <= inHeapMaxBytes
    ? Buffer.from(bytes)
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
