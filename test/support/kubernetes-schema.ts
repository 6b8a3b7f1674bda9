import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';

/**
 * Validates Kubernetes objects offline against the official OpenAPI schemas (kubernetes-models) and
 * the Prometheus Operator CRDs (@kubernetes-models/prometheus-operator). Their validators accept
 * unknown keys, as the API server's lenient decoding would drop them; kubectl's strict field
 * validation refuses them, and a misspelt key (`livenesProbe`) would silently do nothing. So the
 * object is wrapped in proxies that record which keys the validator reads: the compiled schema
 * reads every property it declares and enumerates the keys of maps (labels, data, resources), so a
 * key it neither read nor enumerated is not in the schema.
 */

type Validator = { prototype: { validate(): void } };

const VALIDATORS: Readonly<Record<string, Validator>> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/Ingress': Ingress,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

interface Visit {
  readonly keys: readonly string[];
  readonly read: Set<string>;
  enumerated: boolean;
}

function watch(value: unknown, path: string, visits: Map<string, Visit>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const visit: Visit = { keys: Object.keys(value), read: new Set(), enumerated: false };
  visits.set(path, visit);
  const children = new Map<string, unknown>();
  return new Proxy(value, {
    get(target, key, receiver) {
      const child: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== 'string' || !Object.hasOwn(target, key)) return child;
      visit.read.add(key);
      if (!children.has(key)) children.set(key, watch(child, `${path}/${key}`, visits));
      return children.get(key);
    },
    has(target, key) {
      if (typeof key === 'string') visit.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      visit.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

/** Problems with one object: schema violations and keys the schema does not know; empty when valid. */
export function kubernetesSchemaProblems(object: { apiVersion: string; kind: string }): string[] {
  const validator = VALIDATORS[`${object.apiVersion}/${object.kind}`];
  if (validator === undefined) return [`no schema here for ${object.apiVersion} ${object.kind}`];
  const visits = new Map<string, Visit>();
  const problems: string[] = [];
  try {
    validator.prototype.validate.call(watch(object, '', visits));
  } catch (error) {
    problems.push((error as Error).message);
  }
  for (const [path, visit] of visits) {
    // Never looked into: a free-form field (x-kubernetes-preserve-unknown-fields) or a type error
    // reported above.
    if (visit.enumerated || visit.read.size === 0) continue;
    for (const key of visit.keys)
      if (!visit.read.has(key)) problems.push(`${path || '/'}: unknown key "${key}"`);
  }
  return problems;
}
