// connect-node's transport takes the targets it can make a URL of, and
// refuses the rest when it is made rather than at the first call.
import { describe, expect, it } from "vitest";
import { createConnectNodeTransport, createTransport } from "../src/index.js";

describe("createConnectNodeTransport", () => {
  it("takes host:port with a name, an IPv4 or a bracketed IPv6 address", () => {
    for (const target of ["127.0.0.1:50051", "[::1]:50051", "users.internal:50051"]) {
      expect(createConnectNodeTransport({ target }).target).toBe(target);
    }
  });

  it.each([
    "dns:///users.internal:50051",
    "unix:///run/users.sock",
    "ipv4:10.0.0.1:50051,10.0.0.2:50051",
    "users",
    "users:50051/path",
    "user@users:50051",
    "[1.2.3.4]:50051",
  ])("refuses %s with a RangeError naming the target", (target) => {
    expect(() => createConnectNodeTransport({ target })).toThrow(
      new RangeError(`target: "${target}" is not host:port, such as "127.0.0.1:50051" or "[::1]:50051"`),
    );
    expect(() => createTransport({ target, kind: "connect-node" })).toThrow(RangeError);
  });
});
