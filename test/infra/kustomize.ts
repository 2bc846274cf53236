// A small kustomize renderer for the tests (no kustomize binary here): resources (files and
// directories), namespace, images and strategic-merge patches, which is all infra/k8s uses. Any
// other kustomization field is an error, so the test never silently skips what it cannot render.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: unknown };

const SUPPORTED = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'patches', 'images']);
/** Kinds without a namespace among those detq deploys. */
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass']);
/** List fields merged by a key, as Kubernetes' strategic merge does (by `name` unless listed here). */
const MERGE_KEYS: Record<string, string> = { ports: 'containerPort', volumeMounts: 'mountPath', tolerations: 'key' };

export function readYaml(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  for (const d of docs) if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
  return docs.map((d) => d.toJS() as unknown).filter((d) => d !== null);
}

/** Renders a kustomization directory into its objects. */
export function kustomize(dir: string): K8sObject[] {
  const [k] = readYaml(join(dir, 'kustomization.yaml')) as Record<string, unknown>[];
  if (!k) throw new Error(`${dir}: empty kustomization.yaml`);
  const unknown = Object.keys(k).filter((f) => !SUPPORTED.has(f));
  if (unknown.length) throw new Error(`${dir}/kustomization.yaml: the test renderer does not support ${unknown.join(', ')}`);
  const objects: K8sObject[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const path = join(dir, r);
    objects.push(...(statSync(path).isDirectory() ? kustomize(path) : (readYaml(path) as K8sObject[])));
  }
  for (const p of (k.patches as { path: string }[] | undefined) ?? []) {
    for (const patch of readYaml(join(dir, p.path)) as K8sObject[]) {
      const target = objects.find((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name);
      if (!target) throw new Error(`${dir}/${p.path}: no ${patch.kind}/${patch.metadata.name} to patch`);
      objects[objects.indexOf(target)] = strategicMerge(target, patch) as K8sObject;
    }
  }
  for (const img of (k.images as { name: string; newName?: string; newTag?: string }[] | undefined) ?? []) {
    for (const c of containersOf(objects)) {
      const [name, tag] = splitImage(c.image as string);
      if (name === img.name) c.image = `${img.newName ?? name}:${img.newTag ?? tag ?? 'latest'}`;
    }
  }
  if (typeof k.namespace === 'string')
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata = { ...o.metadata, namespace: k.namespace };
  return objects;
}

function splitImage(image: string): [string, string | undefined] {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, undefined];
}

/** Every container and init container of the workloads, to read or rewrite in place. */
export function containersOf(objects: K8sObject[]): Record<string, unknown>[] {
  return objects.flatMap((o) => {
    const spec = ((o.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template?.spec ?? {}) as Record<string, unknown>;
    return [...((spec.containers as Record<string, unknown>[]) ?? []), ...((spec.initContainers as Record<string, unknown>[]) ?? [])];
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Kubernetes' strategic merge: maps merge, null deletes, lists of objects merge by their key. */
export function strategicMerge(base: unknown, patch: unknown, field = ''): unknown {
  if (isObject(base) && isObject(patch)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = k in base ? strategicMerge(base[k], v, k) : v;
    }
    return out;
  }
  const key = MERGE_KEYS[field] ?? 'name';
  if (Array.isArray(base) && Array.isArray(patch) && [...base, ...patch].every((e) => isObject(e) && key in e)) {
    const out = base.map((e) => ({ ...(e as Record<string, unknown>) }));
    for (const p of patch as Record<string, unknown>[]) {
      const i = out.findIndex((e) => e[key] === p[key]);
      if (i >= 0) out[i] = strategicMerge(out[i], p) as Record<string, unknown>;
      else out.push(p);
    }
    return out;
  }
  return patch;
}
