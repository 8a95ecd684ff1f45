import {
  ResponderBuilder,
  ServerInterceptingCall,
  ServerListenerBuilder,
  type Metadata,
  type ServerInterceptor,
  type ServerWritableStream,
} from "@grpc/grpc-js";

/** Calls' cancellation, keyed by the request metadata object that grpc-js hands on to the method's handler. */
const signals = new WeakMap<Metadata, AbortController>();

/**
 * Sees every call's cancellation, also the one grpc-js does not pass on to a streaming handler: when a client
 * cancels between sending its request and grpc-js starting the handler, the handler still runs but its call never
 * emits "cancelled" (and its writes never call back), so a stream followed for a client already gone would hold
 * its subscriptions until the job ended.
 */
export const cancellationInterceptor: ServerInterceptor = (_method, call) => {
  const controller = new AbortController();
  return new ServerInterceptingCall(
    call,
    new ResponderBuilder()
      .withStart((next) =>
        next(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, pass) => {
              signals.set(metadata, controller);
              pass(metadata);
            })
            .withOnCancel(() => controller.abort())
            .build(),
        ),
      )
      .build(),
  );
};

/** Aborts when the client of this streaming call goes away, however early (needs cancellationInterceptor). */
export function clientGone(call: ServerWritableStream<unknown, unknown>): AbortSignal {
  const controller = signals.get(call.metadata) ?? new AbortController();
  call.on("cancelled", () => controller.abort());
  if (call.cancelled) controller.abort();
  return controller.signal;
}
