// A process that serves the echo service through the chassis, for tests that
// need a real server process (signals, draining, reflection clients).
import { hosted, runService } from "@shopmesh/chassis";
import { EchoService } from "../../../../gen/shopmesh/echo/v1/echo_pb.js";
import { createEchoService } from "./echo-service.js";

await runService({
  name: "echo",
  defaultPort: 0,
  setup: () => ({ services: [hosted(EchoService, createEchoService())] }),
});
