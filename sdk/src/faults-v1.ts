export * from "../../gen/shopmesh/faults/v1/faults_pb.js";
