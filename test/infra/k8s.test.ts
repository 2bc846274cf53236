// infra/k8s validated without a cluster: each overlay rendered (test/infra/kustomize.ts), every
// object checked against the Kubernetes / KEDA OpenAPI schemas (kubernetes-models), then the promises
// of the GPU deployment checked on the rendered objects.
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as apps from 'kubernetes-models/apps/v1';
import * as autoscaling from 'kubernetes-models/autoscaling/v2';
import * as policy from 'kubernetes-models/policy/v1';
import * as core from 'kubernetes-models/v1';
import * as keda from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { REPO_ROOT } from '@detq/core';
import { createMetricsRegistry } from '@detq/api';
import { DetqQueues } from '@detq/queue';
import { testQueueConfig } from '../distributed/helpers';
import { containersOf, kustomize, strategicMerge, type K8sObject } from './kustomize';

type Model = new (data: object) => { validate(): void };
const SCHEMAS: Record<string, Record<string, unknown>> = { v1: core, 'apps/v1': apps, 'autoscaling/v2': autoscaling, 'policy/v1': policy, 'keda.sh/v1alpha1': keda };
const K8S = join(REPO_ROOT, 'infra/k8s');
const OVERLAYS = ['cpu', 'gpu'] as const;

function validate(o: K8sObject): void {
  const model = SCHEMAS[o.apiVersion]?.[o.kind] as Model | undefined;
  if (!model) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
  new model(o).validate();
}

const MODULES: Record<string, string> = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'policy/v1': 'kubernetes-models/policy/v1',
  'keda.sh/v1alpha1': '@kubernetes-models/keda/keda.sh/v1alpha1',
};

/**
 * The schemas accept fields they do not know (Kubernetes' OpenAPI schemas do not close objects), while
 * `kubectl apply` rejects them. The models' TypeScript types do close them: each object is type-checked
 * as an object literal of its model's interface, so a misspelt field is an excess-property error.
 */
function unknownFields(objects: K8sObject[]): string[] {
  const versions = Object.keys(MODULES);
  const source = [
    ...versions.map((v, i) => `import type * as m${i} from '${MODULES[v]}';`),
    ...objects.map((o, i) => `export const o${i}: m${versions.indexOf(o.apiVersion)}.I${o.kind} = ${JSON.stringify(o)};`),
  ].join('\n');
  const file = join(REPO_ROOT, 'test/infra/rendered-manifests.ts');
  const options: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, types: [], target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists } = host;
  host.getSourceFile = (name, language, ...rest) => (name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest));
  host.fileExists = (name) => name === file || fileExists(name);
  const diagnostics = ts.getPreEmitDiagnostics(ts.createProgram([file], options, host));
  return diagnostics.map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const o = objects[line - versions.length];
    return `${o ? `${o.kind}/${o.metadata.name}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

const find = (objects: K8sObject[], kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name}`);
  return o as K8sObject & { spec: any; data: Record<string, string> };
};
const podTemplate = (o: K8sObject) => (o.spec as { template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: any } }).template;
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const WORKLOADS = new Set(['Deployment', 'StatefulSet']);

describe('strategicMerge (the renderer the overlays rely on)', () => {
  it('merges maps, deletes on null, merges named lists by key and replaces other lists', () => {
    const base = { spec: { replicas: 2, c: [{ name: 'w', image: 'a', env: [{ name: 'A', value: '1' }], ports: [{ containerPort: 1, name: 'x' }] }], args: ['a'] } };
    const patch = { spec: { replicas: null, c: [{ name: 'w', env: [{ name: 'B', value: '2' }], ports: [{ containerPort: 1, name: 'y' }] }], args: ['b'] } };
    expect(strategicMerge(base, patch)).toEqual({
      spec: { c: [{ name: 'w', image: 'a', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }], ports: [{ containerPort: 1, name: 'y' }] }], args: ['b'] },
    });
  });
});

describe('closed objects: no field a kind does not define (what `kubectl apply` would reject)', () => {
  it('both overlays type-check against the models; a misspelt field in a probe object is the one error', () => {
    // One program for everything (a TypeScript program costs seconds here): the probe proves the check bites.
    const typo = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'typo-probe' }, spec: { selector: {}, template: { spec: { containers: [{ name: 'c', readinessProb: {} }] } } } };
    const rendered = OVERLAYS.flatMap((overlay) => kustomize(join(K8S, 'overlays', overlay)));
    expect(unknownFields([...rendered, typo])).toEqual([
      `Deployment/typo-probe: Object literal may only specify known properties, and '"readinessProb"' does not exist in type 'IContainer'.`,
    ]);
  });
});

describe.each(OVERLAYS)('infra/k8s/overlays/%s', (overlay) => {
  const objects = kustomize(join(K8S, 'overlays', overlay));

  it('every object is valid against its Kubernetes (or KEDA) schema, in namespace detq, named once', () => {
    expect(objects.length).toBeGreaterThan(10);
    for (const o of objects) expect(() => validate(o), `${o.kind}/${o.metadata.name}`).not.toThrow();
    for (const o of objects) if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('detq');
    const ids = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
  });


  it('references resolve: selectors, config maps, secrets, scale targets; images pinned; pods non-root', () => {
    const names = (kind: string) => new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
    const workloads = objects.filter((o) => WORKLOADS.has(o.kind));
    for (const w of workloads) {
      const t = podTemplate(w);
      expect(matches((w.spec as any).selector.matchLabels, t.metadata.labels), w.metadata.name).toBe(true);
      expect(t.spec.securityContext?.runAsNonRoot === true || w.metadata.name === 'redis' || w.metadata.name === 'minio', w.metadata.name).toBe(true);
      const json = JSON.stringify(t.spec);
      for (const [, ref] of json.matchAll(/"configMapRef":\{"name":"([^"]+)"/g)) expect(names('ConfigMap')).toContain(ref);
      for (const [, ref] of json.matchAll(/"secretKeyRef":\{"name":"([^"]+)"/g)) expect(names('Secret')).toContain(ref);
    }
    for (const s of objects.filter((o) => o.kind === 'Service'))
      expect(workloads.some((w) => matches((s.spec as any).selector, podTemplate(w).metadata.labels)), s.metadata.name).toBe(true);
    for (const p of objects.filter((o) => o.kind === 'PodDisruptionBudget'))
      expect(workloads.some((w) => matches((p.spec as any).selector.matchLabels, podTemplate(w).metadata.labels)), p.metadata.name).toBe(true);
    for (const a of objects.filter((o) => o.kind === 'HorizontalPodAutoscaler' || o.kind === 'ScaledObject'))
      expect(names('Deployment')).toContain((a.spec as any).scaleTargetRef.name);
    for (const c of containersOf(objects)) expect(c.image, String(c.name)).toMatch(/^[^:@]+(:[\w.-]*\d[\w.-]*|@sha256:[0-9a-f]{64})$/);
  });

  it('the worker: readiness from its /readyz, liveness from /healthz, Prometheus annotations on its metrics port, a PDB', () => {
    const worker = find(objects, 'Deployment', 'detq-worker');
    const t = podTemplate(worker);
    const [c] = t.spec.containers;
    const port = c.ports.find((p: { name: string }) => p.name === 'health').containerPort;
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(t.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
    // The port the worker listens on (DETQ_WORKER_PORT from the ConfigMap) is the one probed and scraped.
    expect(find(objects, 'ConfigMap', 'detq').data.DETQ_WORKER_PORT).toBe(String(port));
    expect(find(objects, 'PodDisruptionBudget', 'detq-worker').spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { app: 'detq-worker' } } });
  });

  if (overlay === 'cpu')
    it('cpu: ONNX Runtime workers scaled by an HPA on CPU; no GPU, no KEDA', () => {
      expect(find(objects, 'HorizontalPodAutoscaler', 'detq-worker').spec.scaleTargetRef.name).toBe('detq-worker');
      expect(objects.some((o) => o.kind === 'ScaledObject')).toBe(false);
      expect(JSON.stringify(objects)).not.toContain('nvidia.com/gpu');
      expect(podTemplate(find(objects, 'Deployment', 'detq-worker')).spec.containers[0].image).toBe('ghcr.io/detq/detq:0.1.0');
    });

  if (overlay === 'gpu')
    it('gpu: one GPU per pod, --device 0, TensorRT, node-local engine cache, placement parameters; KEDA owns the replicas', () => {
      const worker = find(objects, 'Deployment', 'detq-worker');
      const spec = podTemplate(worker).spec;
      const [c] = spec.containers;
      expect(c.image).toBe('ghcr.io/detq/detq-gpu:0.1.0');
      expect(c.args).toEqual(['worker', '--device', '0']);
      expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
      expect(c.resources.requests['nvidia.com/gpu']).toBe(1);
      const env = Object.fromEntries(c.env.map((e: { name: string; value?: string }) => [e.name, e.value]));
      expect(env).toMatchObject({ DETQ_ENGINE: 'tensorrt', DETQ_ENGINE_CACHE: '/engines' });
      // The base's credentials survive the patch (env lists merge by name).
      expect(Object.keys(env)).toEqual(expect.arrayContaining(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']));
      const mount = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === env.DETQ_ENGINE_CACHE);
      expect(spec.volumes.find((v: { name: string }) => v.name === mount.name).hostPath).toEqual({ path: '/var/cache/detq/engines', type: 'DirectoryOrCreate' });
      expect(spec.initContainers[0].volumeMounts).toEqual([{ name: mount.name, mountPath: '/engines' }]);
      expect(spec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
      expect(spec.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
      expect('replicas' in worker.spec).toBe(false);
      // Two autoscalers on one Deployment would fight: KEDA makes its own HPA.
      expect(objects.some((o) => o.kind === 'HorizontalPodAutoscaler')).toBe(false);
    });
});

describe('gpu: the KEDA ScaledObject watches the chunk queue the workers take from', () => {
  const objects = kustomize(join(K8S, 'overlays/gpu'));
  const scaled = find(objects, 'ScaledObject', 'detq-worker');
  const [trigger] = scaled.spec.triggers;

  it('scales to zero, after a cool-down longer than a worker drain, on a Prometheus query', () => {
    expect(scaled.spec.minReplicaCount).toBe(0);
    const grace = podTemplate(find(objects, 'Deployment', 'detq-worker')).spec.terminationGracePeriodSeconds;
    expect(scaled.spec.cooldownPeriod).toBeGreaterThanOrEqual(grace);
    expect(trigger.type).toBe('prometheus');
    expect(Number(trigger.metadata.threshold)).toBeGreaterThan(0);
    // Prometheus scrapes the API's token-free metrics port, which the pod annotations name.
    const api = find(objects, 'Deployment', 'detq-api');
    const port = podTemplate(api).metadata?.annotations?.['prometheus.io/port'];
    expect(containersOf([api])[0]!.env).toContainEqual({ name: 'DETQ_METRICS_PORT', value: port });
  });

  it('its query counts the chunks waiting for a worker: prioritized ones included, as fair scheduling makes them all', async () => {
    expect(trigger.metadata.query).toBe('sum(detq_queue_depth{queue="chunks",state=~"waiting|prioritized"})');
    const queues = new DetqQueues(testQueueConfig());
    try {
      await queues.chunks.add('chunk', {} as never, { jobId: 'a', priority: 3 });
      await queues.chunks.add('chunk', {} as never, { jobId: 'b' });
      const text = await createMetricsRegistry(queues).metrics();
      const depth = (state: string) => Number(new RegExp(`^detq_queue_depth\\{queue="chunks",state="${state}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
      expect(depth('waiting') + depth('prioritized')).toBe(2);
      await queues.chunks.obliterate({ force: true });
    } finally {
      await queues.close();
    }
  });
});
