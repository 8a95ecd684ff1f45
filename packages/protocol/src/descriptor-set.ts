import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import type { DescFile } from "@bufbuild/protobuf";
import { file_farm_v1_api } from "./gen/farm/v1/api_pb.js";
import { file_farm_v1_stage } from "./gen/farm/v1/stage_pb.js";

function collect(file: DescFile, into: Map<string, FileDescriptorProto>): void {
  for (const dep of file.dependencies) collect(dep, into);
  if (!into.has(file.proto.name)) into.set(file.proto.name, file.proto);
}

/**
 * The serialized FileDescriptorSet of the farm's protos and their imports, built from the generated code:
 * server reflection serves it, so a client in any language can discover the API from the server alone.
 */
export function farmDescriptorSet(): Uint8Array {
  const files = new Map<string, FileDescriptorProto>();
  collect(file_farm_v1_api, files);
  collect(file_farm_v1_stage, files);
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [...files.values()] }));
}
