// The baseline of `shopmesh bench`: a bare @grpc/grpc-js server with one
// unary method that answers every call with an empty message. No chassis, no
// Connect, no protobuf decoding: the least any grpc-js server can do per call,
// so every figure of the mesh can be read as a share of it.
//
// It answers at the path of shopmesh.echo.v1.EchoService/Echo so the bench can
// call it through the same SDK transport as the services: an empty EchoRequest
// is zero bytes, and zero bytes decode as an empty EchoResponse.
//
//   PORT=30155 node --import tsx tools/cli/src/bench/bare-baseline-server.ts
//
// With TLS_PORT, TLS_CERT, TLS_KEY and TLS_CA it also answers over TLS on
// TLS_PORT (the same handler, grpc-js's own TLS), so that the bench measures
// what TLS costs per call with nothing else in the way.
//
// Prints one JSON line `{"msg":"ready","port":…}` when it listens (what
// spawnService waits for) and exits 0 on SIGTERM or SIGINT.
import { readFileSync } from "node:fs";
import {
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";

/** The method the baseline answers; the bench calls it with the echo contract. */
const bareMethodPath = "/shopmesh.echo.v1.EchoService/Echo";

const empty = Buffer.alloc(0);
const passThrough = (value: Buffer) => value;

const definition = {
  Echo: {
    path: bareMethodPath,
    requestStream: false,
    responseStream: false,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
  },
};

const implementation: UntypedServiceImplementation = {
  Echo: (_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, empty),
};

const port = Number(process.env.PORT ?? "0");
const host = process.env.HOST ?? "127.0.0.1";
const server = new Server();
server.addService(definition, implementation);
const bind = (address: string, credentials: ServerCredentials) =>
  new Promise<number>((resolve) =>
    server.bindAsync(address, credentials, (error, bound) => {
      if (error) {
        process.stderr.write(`bare baseline server: ${error.message}\n`);
        process.exit(1);
      }
      resolve(bound);
    }),
  );
const bound = await bind(`${host}:${port}`, ServerCredentials.createInsecure());
const tlsPort = process.env.TLS_PORT;
const tlsBound =
  tlsPort === undefined
    ? undefined
    : await bind(
        `${host}:${tlsPort}`,
        ServerCredentials.createSsl(readFileSync(process.env.TLS_CA!), [
          { cert_chain: readFileSync(process.env.TLS_CERT!), private_key: readFileSync(process.env.TLS_KEY!) },
        ]),
      );
process.stdout.write(`${JSON.stringify({ msg: "ready", port: bound, tlsPort: tlsBound, pid: process.pid })}\n`);
const stop = () => server.tryShutdown(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
