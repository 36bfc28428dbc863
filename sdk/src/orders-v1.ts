export * from "../../gen/shopmesh/orders/v1/orders_pb.js";
