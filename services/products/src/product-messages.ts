import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ProductSchema } from "@shopmesh/sdk/products/v1";
import type { ProductRow } from "./db/schema.js";

/** A stored product as the contract's Product, for answers and events alike. */
export function toProduct(row: ProductRow): MessageInitShape<typeof ProductSchema> {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    price: { currencyCode: row.currency, minorUnits: row.priceMinor },
    createTime: timestampFromMs(row.createdAt),
  };
}
