import { addSpanEvent, degradations } from "@shopmesh/chassis";
import { Dependency, Fallback, type GetUserOrdersResponse } from "@shopmesh/sdk/userorders/v1";

/**
 * Counts the degradations a view answered with into
 * shopmesh_degradations_total, by dependency ("products") and fallback
 * ("NO_PRODUCT_DETAILS"), STRONG and EVENTUAL views alike, and records
 * each as an event on the call's span.
 */
export function countDegradations(response: GetUserOrdersResponse): GetUserOrdersResponse {
  for (const degradation of response.degradations) {
    const dependency = (Dependency[degradation.dependency] ?? String(degradation.dependency)).toLowerCase();
    const fallback = Fallback[degradation.fallback] ?? String(degradation.fallback);
    degradations.inc({ dependency, fallback });
    addSpanEvent("degradation", {
      "peer.service": dependency,
      "shopmesh.fallback": fallback,
      "shopmesh.code": degradation.code,
      message: degradation.message,
    });
  }
  return response;
}
