import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

/**
 * Adds gRPC server reflection (v1 and v1alpha) describing the given services,
 * from the descriptors that protobuf-es embeds in the generated code, so that
 * grpcurl and `buf curl` work without .proto files.
 */
export function addReflection(server: Pick<Server, "addService">, services: readonly DescService[]): void {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.name)) return;
    files.set(file.name, file);
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const service of services) visit(service.file);
  const fileDescriptorProtos = [...files.values()].map((file) => toBinary(FileDescriptorProtoSchema, file.proto));
  const reflection = new ReflectionService({ descriptors: { fileDescriptorProtos } } as never, {
    services: services.map((service) => service.typeName),
  });
  reflection.addToServer(server);
}
