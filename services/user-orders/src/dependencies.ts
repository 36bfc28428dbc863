import { Dependency } from "@shopmesh/sdk/userorders/v1";

/**
 * The services a view is made from, by name: user-orders calls them (STRONG)
 * and follows their event streams (EVENTUAL), so one name serves both, in
 * settings, logs, metrics and the tools.
 */
export const dependencyNames = ["users", "products", "orders"] as const;
export type DependencyName = (typeof dependencyNames)[number];

/** The contract's value for each dependency (Degradation.dependency, StreamLag.source, timings). */
export const dependencyEnum: Readonly<Record<DependencyName, Dependency>> = Object.freeze({
  users: Dependency.USERS,
  products: Dependency.PRODUCTS,
  orders: Dependency.ORDERS,
});

/** The name of a contract value, or undefined for one that names no dependency (UNSPECIFIED, or newer than this code). */
export function dependencyNameOf(value: Dependency): DependencyName | undefined {
  return dependencyNames.find((name) => dependencyEnum[name] === value);
}
