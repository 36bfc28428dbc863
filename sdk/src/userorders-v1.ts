export * from "../../gen/shopmesh/userorders/v1/user_orders_pb.js";
