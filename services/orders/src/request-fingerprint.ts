import { createHash } from "node:crypto";

/**
 * What a CreateOrder request asks for, beyond who asks and its request_id
 * (those two are the key the fingerprint is stored under).
 */
export interface FingerprintedItem {
  productId: string;
  quantity: number;
}

/**
 * The fingerprint of a CreateOrder request: a SHA-256 over a canonical form
 * of its items, the validated product ids and quantities in the order the
 * request lists them. Order counts because the order's lines follow it: a
 * request listing the same items the other way round asks for a different
 * order. The "v1" prefix lets the canonical form change without old
 * fingerprints comparing equal by accident.
 *
 * A stored order's lines hold exactly these items in this order, so an order
 * written before fingerprints were kept gets its fingerprint from its lines.
 */
export function requestFingerprint(items: readonly FingerprintedItem[]): string {
  const canonical = JSON.stringify(items.map((item) => [item.productId, item.quantity]));
  return `v1:${createHash("sha256").update(canonical).digest("base64url")}`;
}
