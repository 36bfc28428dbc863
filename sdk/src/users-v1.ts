export * from "../../gen/shopmesh/users/v1/users_pb.js";
