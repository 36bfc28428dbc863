import { degradations } from "@shopmesh/chassis";
import { Dependency, Fallback, type GetUserOrdersResponse } from "@shopmesh/sdk/userorders/v1";

/**
 * Counts the degradations a view answered with into
 * shopmesh_degradations_total, by dependency ("products") and fallback
 * ("NO_PRODUCT_DETAILS"), STRONG and EVENTUAL views alike.
 */
export function countDegradations(response: GetUserOrdersResponse): GetUserOrdersResponse {
  for (const degradation of response.degradations) {
    degradations.inc({
      dependency: (Dependency[degradation.dependency] ?? String(degradation.dependency)).toLowerCase(),
      fallback: Fallback[degradation.fallback] ?? String(degradation.fallback),
    });
  }
  return response;
}
