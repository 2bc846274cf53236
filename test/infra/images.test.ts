// The compose file against the Compose Specification's JSON schema, and the Dockerfiles parsed
// (dockerfile-ast) for pinned bases, a non-root user and no secrets. Docker itself does not run here.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import { DockerfileParser, type Dockerfile } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '@detq/core';
import { readYaml } from './kustomize';

const require = createRequire(import.meta.url);
const DOCKER = join(REPO_ROOT, 'infra/docker');
const DOCKERFILES = readdirSync(DOCKER).filter((f) => /^Dockerfile(\..+)?$/.test(f));

describe('infra/compose.yaml', () => {
  // dclint ships the Compose Specification's schema (compose_spec.json).
  // It names draft-07 by its https URI, which Ajv (draft-07 by default) only knows as http: drop it.
  const { $schema: _, ...schema } = JSON.parse(readFileSync(join(dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json'), 'utf8')) as Record<string, unknown>;
  const compose = readYaml(join(REPO_ROOT, 'infra/compose.yaml'))[0] as { services: Record<string, any>; volumes: Record<string, unknown> };

  it('is valid against the Compose Specification', () => {
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    expect(validate(compose), JSON.stringify(validate.errors, null, 1)).toBe(true);
  });

  it('the gpu profile: a supervisor worker on every GPU with an engine-cache volume; off by default', () => {
    const gpu = compose.services['worker-gpu'];
    expect(gpu.profiles).toEqual(['gpu']);
    expect(gpu.command).toEqual(['worker', '--gpus', 'all']);
    expect(gpu.deploy.resources.reservations.devices).toEqual([{ driver: 'nvidia', count: 'all', capabilities: ['gpu'] }]);
    expect(gpu.environment).toMatchObject({ DETQ_ENGINE: 'tensorrt', DETQ_QUEUE_PREFIX: '{detq}', REDIS_URL: 'redis://redis:6379' });
    expect(gpu.volumes).toContain('engine-cache:/engines');
    expect(compose.volumes).toHaveProperty('engine-cache');
    for (const [name, s] of Object.entries(compose.services)) if (name !== 'worker-gpu') expect(s.profiles, name).toBeUndefined();
    // Every image compose builds exists.
    for (const s of Object.values(compose.services)) if (s.build) expect(existsSync(join(REPO_ROOT, 'infra', s.build.context, s.build.dockerfile))).toBe(true);
  });
});

interface Stage {
  base: string;
  name: string | null;
  user: string | null;
}

/** The stages of a Dockerfile with their bases (global ARG defaults expanded) and last USER. */
function stages(df: Dockerfile): Stage[] {
  const args = new Map<string, string>();
  const out: Stage[] = [];
  for (const ins of df.getInstructions()) {
    const keyword = ins.getKeyword();
    if (keyword === 'ARG' && !out.length) {
      const [name, value] = (ins.getArgumentsContent() ?? '').split('=');
      args.set(name!, value ?? '');
    } else if (keyword === 'FROM') {
      const [image, , name] = (ins.getArgumentsContent() ?? '').split(/\s+/);
      out.push({ base: image!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args.get(a ?? b) ?? ''), name: name ?? null, user: null });
    } else if (keyword === 'USER') out.at(-1)!.user = ins.getArgumentsContent();
  }
  return out;
}

describe.each(DOCKERFILES)('infra/docker/%s', (file) => {
  const text = readFileSync(join(DOCKER, file), 'utf8');
  const df = DockerfileParser.parse(text);
  const all = stages(df);
  const names = new Set(all.map((s) => s.name));

  it('every base image is pinned to a release (a version tag or a digest, never latest)', () => {
    const external = all.filter((s) => !names.has(s.base));
    expect(external.length).toBeGreaterThan(0);
    for (const { base } of external) expect(base, file).toMatch(/^[\w./-]+(:[\w.-]*\d+\.\d+[\w.-]*|@sha256:[0-9a-f]{64})$/);
  });

  it('runs as a non-root user', () => {
    const runtime = all.at(-1)!;
    expect(runtime.user).toMatch(/^\d+$/);
    expect(Number(runtime.user)).toBeGreaterThan(0);
  });

  it('holds no secrets: no secret-looking ENV/ARG values, no key files copied, none in the build context', () => {
    const SECRET = /(SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)/i;
    for (const ins of df.getInstructions()) {
      const k = ins.getKeyword();
      if (k === 'ENV' || k === 'ARG')
        for (const [name, value] of (ins.getArgumentsContent() ?? '').split(/\s+/).map((kv) => kv.split('='))) if (SECRET.test(name!)) expect(value ?? '', `${k} ${name}`).toBe('');
      if (k === 'COPY' || k === 'ADD') expect(ins.getArgumentsContent(), k).not.toMatch(/\.env\b|\.pem\b|\.key\b|id_rsa|credentials|\.npmrc\s+\/root/);
    }
    expect(text).not.toMatch(/AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|ghp_[0-9A-Za-z]{36}/);
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignored).toEqual(expect.arrayContaining(['.env', '.env.*', '*.pem', '*.key', '.git']));
  });
});

describe('infra/docker/Dockerfile.gpu', () => {
  const df = DockerfileParser.parse(readFileSync(join(DOCKER, 'Dockerfile.gpu'), 'utf8'));
  const all = stages(df);

  it('multi-stage: the addon is compiled on the TensorRT image, the runtime stage is a slim CUDA runtime with the addon', () => {
    const build = all.find((s) => s.name === 'build')!;
    expect(build.base).toMatch(/^nvcr\.io\/nvidia\/tensorrt:\d{2}\.\d{2}-py3$/);
    const runtime = all.at(-1)!;
    expect(runtime.base).toMatch(/^nvcr\.io\/nvidia\/cuda:[\d.]+-cudnn-runtime-ubuntu[\d.]+$/);
    const text = readFileSync(join(DOCKER, 'Dockerfile.gpu'), 'utf8');
    expect(text).toContain('COPY --from=build /app/native/build/Release/detq_native.node native/build/Release/');
    // LibTorch is a build argument, off by default.
    expect(df.getInstructions().some((i) => i.getKeyword() === 'ARG' && i.getArgumentsContent() === 'TORCH_VERSION=')).toBe(true);
  });

  it('starts through gpu-entrypoint.sh, which probes `detq info --json` and refuses an unavailable GPU engine', () => {
    const entry = df.getInstructions().find((i) => i.getKeyword() === 'ENTRYPOINT')!;
    expect(JSON.parse(entry.getArgumentsContent()!)).toEqual(['infra/docker/gpu-entrypoint.sh']);
    const script = join(DOCKER, 'gpu-entrypoint.sh');
    accessSync(script, constants.X_OK);
    // This machine has no GPU: the probe stops the container with the engine's reason and exit 6.
    const run = spawnSync(script, ['worker'], { cwd: REPO_ROOT, env: { ...process.env, DETQ_ENGINE: 'tensorrt' }, encoding: 'utf8', timeout: 120_000 });
    expect(run.status, run.stderr).toBe(6);
    expect(JSON.parse(run.stderr.slice(0, run.stderr.lastIndexOf('}') + 1))).toHaveProperty('engines');
    expect(run.stderr).toMatch(/detq: engine tensorrt is not available here: .+/);
  });
});
