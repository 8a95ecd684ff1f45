export * from "./gen/farm/v1/api_pb.js";
export * from "./gen/farm/v1/stage_pb.js";
export * from "./gen/farm/v1/tensor_pb.js";
export * from "./tensor-codec.js";
export { grpcServiceDefinition, decodeFailure } from "./grpc-service.js";
export { farmFileDescriptors } from "./descriptor-set.js";
export { stageName, stagePool, stageOutputSize, type Pool } from "./stages.js";
export { create, fromBinary, toBinary, clone, toJson, toJsonString, fromJsonString } from "@bufbuild/protobuf";
