export * from "../../gen/shopmesh/type/v1/money_pb.js";
export * from "../../gen/shopmesh/type/v1/trace_context_pb.js";
