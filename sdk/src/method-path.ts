import type { DescMethod } from "@bufbuild/protobuf";

/**
 * "/package.Service/Method": the HTTP/2 path a gRPC method is called at.
 *
 * @internal
 */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}
