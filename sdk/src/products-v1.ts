export * from "../../gen/shopmesh/products/v1/products_pb.js";
