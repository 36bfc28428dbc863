/** A grpc-js deadline (a Date, or epoch milliseconds with Infinity for none) as epoch milliseconds. */
export function deadlineMs(deadline: Date | number): number {
  return deadline instanceof Date ? deadline.getTime() : deadline;
}
