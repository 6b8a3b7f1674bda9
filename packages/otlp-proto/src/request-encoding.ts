import {
  type Metadata,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from '@grpc/grpc-js';

/**
 * Tells handlers which `grpc-encoding` (compression) each request declared. grpc-js removes that
 * header from the metadata it hands to handlers and keeps it only in a private field of its
 * innermost call object (`incomingEncoding`, grpc-js 1.14), so an interceptor reads it there and
 * files it under the request's Metadata object, which grpc-js passes on to the handler unchanged.
 * Should grpc-js rename the field, encodings read as `undefined` and the receiver test that
 * exports with gzip fails, which is the signal to revisit this file.
 */
export interface RequestEncodings {
  /** Register on the `Server` as its only (innermost) interceptor. */
  readonly interceptor: ServerInterceptor;
  /** `'identity'`, `'gzip'` or `'deflate'`; `undefined` when grpc-js did not expose it. */
  encodingOf(metadata: Metadata): string | undefined;
}

function declaredEncoding(call: ServerInterceptingCallInterface): string | undefined {
  const encoding: unknown = Reflect.get(call, 'incomingEncoding');
  return typeof encoding === 'string' ? encoding : undefined;
}

export function createRequestEncodings(): RequestEncodings {
  const byMetadata = new WeakMap<Metadata, string>();
  const interceptor: ServerInterceptor = (_method, call) => {
    const encoding = declaredEncoding(call);
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            if (encoding !== undefined) byMetadata.set(metadata, encoding);
            nextMetadata(metadata);
          },
        }),
    });
  };
  return { interceptor, encodingOf: (metadata) => byMetadata.get(metadata) };
}
