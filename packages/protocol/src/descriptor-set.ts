import { toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { file_farm_v1_api } from "./gen/farm/v1/api_pb.js";
import { file_farm_v1_stage } from "./gen/farm/v1/stage_pb.js";

function collect(file: DescFile, into: Map<string, DescFile>): void {
  for (const dep of file.dependencies) collect(dep, into);
  if (!into.has(file.proto.name)) into.set(file.proto.name, file);
}

/**
 * The serialized FileDescriptorProtos of the farm's protos and their imports (imports first), taken from the
 * generated code. Server reflection serves them file by file, so a client in any language can discover the API
 * from the server alone.
 */
export function farmFileDescriptors(): Uint8Array[] {
  const files = new Map<string, DescFile>();
  collect(file_farm_v1_api, files);
  collect(file_farm_v1_stage, files);
  return [...files.values()].map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
}
