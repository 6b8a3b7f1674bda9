import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { type Manifest, objectId, renderKustomization } from './kustomize.ts';

/** An overlay of deploy/kubernetes: `example` is the pull path, `otlp-push` the push path. */
export type Overlay = 'example' | 'otlp-push';

/** What a worker's container gets in a pod of an overlay: its config file and its environment. */
export interface PodSpec {
  /** The parsed config file from the worker's ConfigMap (the file `--config` names). */
  readonly config: Record<string, unknown>;
  /** The container's env, with the downward-API fields filled in for this pod. */
  readonly env: Readonly<Record<string, string>>;
}

/** Stands in for the fields the kubelet fills in (`metadata.uid` and the like). */
export interface PodIdentity {
  readonly name: string;
  readonly uid: string;
  readonly namespace: string;
}

const overlaysDir = fileURLToPath(new URL('../../deploy/kubernetes/overlays/', import.meta.url));
const rendered = new Map<Overlay, Manifest[]>();

function render(overlay: Overlay): Manifest[] {
  let objects = rendered.get(overlay);
  if (objects === undefined) {
    objects = renderKustomization(`${overlaysDir}${overlay}`);
    rendered.set(overlay, objects);
  }
  return objects;
}

function find(overlay: Overlay, kinds: readonly string[], name: string): Manifest {
  const object = render(overlay).find((o) => kinds.includes(o.kind) && o.metadata.name === name);
  if (object === undefined) {
    throw new Error(`deploy/kubernetes/overlays/${overlay} renders no ${kinds.join(' or ')} named ${name}`);
  }
  return object;
}

/** One file of a ConfigMap of an overlay, parsed as YAML. */
export function configMapFile(overlay: Overlay, configMap: string, file: string): Record<string, unknown> {
  const object = find(overlay, ['ConfigMap'], configMap);
  const text = (object.data as Record<string, string> | undefined)?.[file];
  if (text === undefined) throw new Error(`${objectId(object)} in ${overlay} has no file ${file}`);
  return parseYaml(text) as Record<string, unknown>;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

interface Container {
  name: string;
  args?: string[];
  env?: EnvVar[];
}

/**
 * The pod spec of `worker` (`proxy`, `log-forwarder`) as `overlay` deploys it: the workload
 * `switchyard-<worker>`, its container whose first argument is the worker, the ConfigMap file its
 * `--config` names, and its env with the downward API resolved for `pod`.
 */
export function podSpec(overlay: Overlay, worker: string, pod: PodIdentity): PodSpec {
  const name = `switchyard-${worker}`;
  const workload = find(overlay, ['Deployment', 'DaemonSet', 'StatefulSet'], name);
  const containers = (workload.spec as { template: { spec: { containers: Container[] } } }).template.spec
    .containers;
  const container = containers.find((c) => c.args?.[0] === worker);
  if (container === undefined) throw new Error(`${objectId(workload)} has no container running ${worker}`);
  const args = container.args ?? [];
  const configPath = args[args.indexOf('--config') + 1] ?? '';
  const file = configPath.slice(configPath.lastIndexOf('/') + 1);
  const fieldValues: Record<string, string> = {
    'metadata.name': pod.name,
    'metadata.uid': pod.uid,
    'metadata.namespace': pod.namespace,
    'spec.nodeName': hostname(),
  };
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    const value = variable.value ?? (fieldPath === undefined ? undefined : fieldValues[fieldPath]);
    if (value === undefined)
      throw new Error(`${objectId(workload)}: env ${variable.name} has no value we can fill in`);
    env[variable.name] = value;
  }
  return { config: configMapFile(overlay, name, file), env };
}
