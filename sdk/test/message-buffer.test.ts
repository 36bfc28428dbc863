import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { encodeMessage } from "../src/message-buffer.js";
import { GetProductRequestSchema, ProductSchema } from "../src/products-v1.js";

const request = (productId: string) => create(GetProductRequestSchema, { productId });

describe("encodeMessage", () => {
  it("gives the message's binary encoding", () => {
    const expectEncodes = <Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>) => {
      const encoded = encodeMessage(schema, message);
      expect(Buffer.isBuffer(encoded)).toBe(true);
      expect(new Uint8Array(encoded)).toEqual(toBinary(schema, message));
      expect(fromBinary(schema, encoded)).toEqual(message);
    };
    expectEncodes(GetProductRequestSchema, request("p-1"));
    expectEncodes(
      ProductSchema,
      create(ProductSchema, { id: "p-1", name: "Espresso beans 1 kg", description: "d".repeat(300) }),
    );
    expect(encodeMessage(GetProductRequestSchema, request(""))).toHaveLength(0);
  });

  it("copies an encoding of up to 64 bytes into Node's buffer pool", () => {
    // Tag and length take two bytes: 62 characters make 64 bytes.
    const encoded = encodeMessage(GetProductRequestSchema, request("x".repeat(62)));
    expect(encoded).toHaveLength(64);
    expect(encoded.buffer.byteLength).toBe(Buffer.poolSize);
  });

  it("wraps a longer encoding without copying it", () => {
    const encoded = encodeMessage(GetProductRequestSchema, request("x".repeat(63)));
    expect(encoded).toHaveLength(65);
    // The encoder's own block, exactly as long as the encoding, not a slice of the pool.
    expect(encoded.byteOffset).toBe(0);
    expect(encoded.buffer.byteLength).toBe(65);
  });
});
