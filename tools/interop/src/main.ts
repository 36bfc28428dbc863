// The interop server process: grpc.testing.TestService on the chassis, for
// gRPC's interop clients (npm run interop) or any other caller.
import { hosted, runService } from "@shopmesh/chassis";
import { TestService } from "../../../gen/grpc/testing/test_pb.js";
import { createTestService } from "./test-service.js";

await runService({
  name: "interop",
  defaultPort: 50060,
  setup: () => ({ services: [hosted(TestService, createTestService())] }),
});
