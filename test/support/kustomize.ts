import { readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';

/**
 * The part of kustomize that deploy/kubernetes uses, so that a test can see what an overlay renders
 * to without kubectl: `resources` (files and directories), `namespace`, `images`, and `patches`
 * given by `path` as strategic-merge patches (including `$patch: delete`). Any other field of a
 * kustomization is refused rather than silently ignored.
 */

export type Manifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string };
};

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches']);

/** Merge keys of the built-in list fields the patches touch; other lists are replaced whole, as for CRDs. */
const MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
};

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every document of a YAML file; a parse error or warning throws with the file's name. */
export function readYamlDocuments(file: string): unknown[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'));
  return documents
    .map((document) => {
      const problem = document.errors[0] ?? document.warnings[0];
      if (problem !== undefined) throw new Error(`${file}: ${problem.message}`);
      return document.toJSON() as unknown;
    })
    .filter((value) => value !== null);
}

function asManifest(value: unknown, file: string): Manifest {
  if (
    !isObject(value) ||
    typeof value.apiVersion !== 'string' ||
    typeof value.kind !== 'string' ||
    !isObject(value.metadata) ||
    typeof value.metadata.name !== 'string'
  ) {
    throw new Error(`${file}: expected a Kubernetes object with apiVersion, kind and metadata.name`);
  }
  return value as Manifest;
}

/** `kind/name` — what identifies an object within one rendering (one namespace). */
export function objectId(object: Manifest): string {
  return `${object.kind}/${object.metadata.name}`;
}

/** Renders a kustomization directory to its objects, in resource order. */
export function renderKustomization(dir: string): Manifest[] {
  const file = join(dir, 'kustomization.yaml');
  const [kustomization] = readYamlDocuments(file);
  if (!isObject(kustomization)) throw new Error(`${file}: expected a mapping`);
  const unknown = Object.keys(kustomization).filter((key) => !KUSTOMIZATION_FIELDS.has(key));
  if (unknown.length > 0)
    throw new Error(`${file}: fields this renderer does not implement: ${unknown.join(', ')}`);

  let objects: Manifest[] = [];
  for (const entry of (kustomization.resources ?? []) as string[]) {
    const path = join(dir, entry);
    const rendered = statSync(path).isDirectory()
      ? renderKustomization(path)
      : readYamlDocuments(path).map((document) => asManifest(document, path));
    for (const object of rendered) {
      if (objects.some((existing) => objectId(existing) === objectId(object)))
        throw new Error(`${relative(process.cwd(), path)}: ${objectId(object)} is defined twice`);
      objects.push(object);
    }
  }
  for (const patch of (kustomization.patches ?? []) as { path?: string }[]) {
    if (patch.path === undefined || Object.keys(patch).length !== 1)
      throw new Error(`${file}: only patches given by path alone are implemented`);
    objects = applyPatchFile(objects, join(dir, patch.path));
  }
  if (typeof kustomization.namespace === 'string') {
    const namespace = kustomization.namespace;
    objects = objects.map((object) => ({ ...object, metadata: { ...object.metadata, namespace } }));
  }
  for (const image of (kustomization.images ?? []) as { name: string; newName?: string; newTag?: string }[]) {
    objects = objects.map((object) => replaceImage(object, image));
  }
  return objects;
}

function applyPatchFile(objects: Manifest[], file: string): Manifest[] {
  let result = objects;
  for (const document of readYamlDocuments(file)) {
    const patch = asManifest(document, file);
    const index = result.findIndex(
      (object) => objectId(object) === objectId(patch) && object.apiVersion === patch.apiVersion,
    );
    if (index < 0) throw new Error(`${file}: patch target ${objectId(patch)} is not among the resources`);
    if (patch.$patch === 'delete') {
      result = result.filter((_, i) => i !== index);
      continue;
    }
    const builtIn = !patch.apiVersion.includes('.');
    result = result.map((object, i) =>
      i === index ? (mergePatch(object, patch, builtIn) as Manifest) : object,
    );
  }
  return result;
}

/**
 * Strategic merge: mappings merge key by key (`null` deletes), lists of built-in kinds with a
 * merge key merge item by item, any other list is replaced.
 */
export function mergePatch(target: unknown, patch: unknown, builtIn: boolean, field = ''): unknown {
  if (Array.isArray(patch)) {
    const key = builtIn ? MERGE_KEYS[field] : undefined;
    if (key === undefined || !Array.isArray(target)) return patch;
    const merged = [...target];
    for (const item of patch) {
      const at = merged.findIndex(
        (existing) => isObject(existing) && isObject(item) && existing[key] === item[key],
      );
      if (at < 0) merged.push(item);
      else merged[at] = mergePatch(merged[at], item, builtIn);
    }
    return merged;
  }
  if (!isObject(patch) || !isObject(target)) return patch;
  const merged: Json = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = mergePatch(target[key], value, builtIn, key);
  }
  return merged;
}

function replaceImage(
  object: Manifest,
  image: { name: string; newName?: string; newTag?: string },
): Manifest {
  const spec = (object.spec as Json | undefined)?.template as Json | undefined;
  const podSpec = spec?.spec as Json | undefined;
  if (podSpec === undefined) return object;
  const rewrite = (containers: unknown) =>
    ((containers ?? []) as Json[]).map((container) => {
      const [name, tag] = String(container.image).split(':');
      if (name !== image.name) return container;
      return { ...container, image: `${image.newName ?? name}:${image.newTag ?? tag}` };
    });
  const patched = {
    ...podSpec,
    containers: rewrite(podSpec.containers),
    ...(podSpec.initContainers === undefined ? {} : { initContainers: rewrite(podSpec.initContainers) }),
  };
  return mergePatch(object, { spec: { template: { spec: patched } } }, false) as Manifest;
}
