import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  checkCurrencyCode,
  checkId,
  checkIds,
  checkPageSize,
  checkText,
  decodePageToken,
  encodePageToken,
  invalidArgument,
  requireAdmin,
  streamEventsHandler,
} from "@shopmesh/chassis";
import type { ProductsService } from "@shopmesh/sdk/products/v1";
import type { Money } from "@shopmesh/sdk/type/v1";
import { toProduct } from "./product-messages.js";
import type { ProductChange, ProductStore } from "./product-store.js";

/** Largest number of ids BatchGetProducts answers at once (as the contract says). */
export const maxBatchProducts = 500;
/** Largest price accepted, in minor units (ten billion in major units). */
const maxPriceMinor = 1_000_000_000_000n;

function checkPrice(field: string, price: Money | undefined): { currency: string; minor: bigint } {
  if (!price) throw invalidArgument(field, "is required");
  checkCurrencyCode(`${field}.currency_code`, price.currencyCode);
  if (price.minorUnits < 0n || price.minorUnits > maxPriceMinor) {
    throw invalidArgument(`${field}.minor_units`, `must be from 0 to ${maxPriceMinor}`);
  }
  return { currency: price.currencyCode, minor: price.minorUnits };
}

/** The ProductsService handlers: validation, authorisation and mapping; data access is in ProductStore. */
export function createProductsService(store: ProductStore): ServiceImpl<typeof ProductsService> {
  return {
    createProduct(request, context) {
      requireAdmin(context);
      const name = checkText("name", request.name, { max: 200 });
      const description = checkText("description", request.description, { min: 0, max: 2000, multiline: true });
      const price = checkPrice("price", request.price);
      const row = store.create({ name, description, priceMinor: price.minor, currency: price.currency });
      return { product: toProduct(row) };
    },

    updateProduct(request, context) {
      requireAdmin(context);
      const id = checkId("product_id", request.productId);
      const change: ProductChange = {};
      if (request.name !== undefined) change.name = checkText("name", request.name, { max: 200 });
      if (request.description !== undefined) {
        change.description = checkText("description", request.description, { min: 0, max: 2000, multiline: true });
      }
      if (request.price) {
        const price = checkPrice("price", request.price);
        change.priceMinor = price.minor;
        change.currency = price.currency;
      }
      const row = store.update(id, change);
      if (!row) throw new ConnectError(`product ${id} not found`, Code.NotFound);
      return { product: toProduct(row) };
    },

    getProduct(request) {
      const id = checkId("product_id", request.productId);
      const row = store.byId(id);
      if (!row) throw new ConnectError(`product ${id} not found`, Code.NotFound);
      return { product: toProduct(row) };
    },

    listProducts(request) {
      const pageSize = checkPageSize("page_size", request.pageSize, { fallback: 20, max: 100 });
      const cursor = decodePageToken<{ after: string }>("page_token", request.pageToken, { after: "id" });
      const rows = store.page(cursor?.after, pageSize + 1);
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        products: page.map(toProduct),
        nextPageToken: rows.length > pageSize && last ? encodePageToken({ after: last.id }) : "",
      };
    },

    batchGetProducts(request) {
      const ids = checkIds("product_ids", request.productIds, { max: maxBatchProducts });
      const found = store.byIds(ids);
      return {
        products: ids.flatMap((id) => {
          const row = found.get(id);
          return row ? [toProduct(row)] : [];
        }),
        missingProductIds: ids.filter((id) => !found.has(id)),
      };
    },

    streamEvents: streamEventsHandler(store.events),
  };
}
