export * from "../../gen/shopmesh/type/v1/money_pb.js";
