import { randomUUID } from 'node:crypto';
import { defaultResource, type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import type { OtelEnvironment } from './otel-env.ts';

/**
 * Environment variables a pod gets from the Kubernetes downward API (deploy/ sets them):
 * `fieldRef: metadata.name` and so on. Each becomes the semantic-convention resource attribute.
 */
export const DOWNWARD_API_ENV: Readonly<Record<string, string>> = Object.freeze({
  K8S_POD_NAME: 'k8s.pod.name',
  K8S_POD_UID: 'k8s.pod.uid',
  K8S_NAMESPACE_NAME: 'k8s.namespace.name',
  K8S_NODE_NAME: 'k8s.node.name',
});

export interface ResourceOptions {
  readonly serviceName: string;
  readonly serviceVersion: string;
  readonly otelEnv: OtelEnvironment;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * The process's Resource. Precedence, lowest first: our defaults, the downward-API variables,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME` (as the specification orders the last two).
 * service.instance.id is the pod UID when known (stable for the pod's life and unique), else a
 * random UUID per process.
 */
export function buildResource(options: ResourceOptions): Resource {
  const attributes: Record<string, string> = {
    'service.name': options.serviceName,
    'service.version': options.serviceVersion,
    'service.instance.id': options.env.K8S_POD_UID?.trim() || randomUUID(),
  };
  for (const [variable, key] of Object.entries(DOWNWARD_API_ENV)) {
    const value = options.env[variable]?.trim();
    if (value) attributes[key] = value;
  }
  Object.assign(attributes, options.otelEnv.resourceAttributes);
  if (options.otelEnv.serviceName !== undefined) attributes['service.name'] = options.otelEnv.serviceName;
  // defaultResource() brings telemetry.sdk.{name,language,version}; ours take precedence.
  return defaultResource().merge(resourceFromAttributes(attributes));
}
