import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

/**
 * Builds a grpc-js service definition from a protobuf-es service descriptor, so the server and clients
 * use protobuf-es messages (one generated code base) with grpc-js' transport.
 */
export function grpcServiceDefinition<T extends GenServiceMethods>(service: GenService<T>): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: requestDeserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.name,
    };
  }
  return definition;
}

function serializer<D extends DescMessage>(schema: D) {
  return (message: unknown): Buffer => Buffer.from(toBinary(schema, message as MessageShape<D>));
}

/** Set on a request that could not be decoded; see decodeFailure(). */
const DECODE_FAILURE = Symbol("decodeFailure");

/**
 * grpc-js answers a request that fails to deserialize with INTERNAL; bad bytes from a client (invalid UTF-8 in a
 * string, say) are the client's error, so the failure is handed to the handler, which answers INVALID_ARGUMENT.
 */
function requestDeserializer<D extends DescMessage>(schema: D) {
  return (bytes: Buffer): MessageShape<D> | { [DECODE_FAILURE]: string } => {
    try {
      return fromBinary(schema, bytes);
    } catch (err) {
      const reason = /utf-8/i.test((err as Error).message) ? "a text field is not valid UTF-8" : (err as Error).message;
      return { [DECODE_FAILURE]: `the request is not a valid ${schema.typeName}: ${reason}` };
    }
  };
}

/** The reason a request could not be decoded, or undefined for a well-formed request. */
export function decodeFailure(request: unknown): string | undefined {
  return (request as { [DECODE_FAILURE]?: string } | null)?.[DECODE_FAILURE];
}

function deserializer<D extends DescMessage>(schema: D) {
  return (bytes: Buffer): MessageShape<D> => fromBinary(schema, bytes);
}
