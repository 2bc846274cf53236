import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { build, type Plugin } from 'esbuild';
import type { FastifyInstance } from 'fastify';

const HERE = dirname(fileURLToPath(import.meta.url));

export interface BundledAsset {
  type: string;
  body: Buffer;
}

/**
 * zod re-exports every locale as `z.locales`, which no bundler can drop (half the bundle); the browser
 * only ever shows English messages, which zod's schemas import on their own.
 */
const englishOnlyZod: Plugin = {
  name: 'english-only-zod',
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) => (args.importer.includes('/zod/') ? { path: 'zod-locales', namespace: 'detq' } : undefined));
    b.onLoad({ filter: /^zod-locales$/, namespace: 'detq' }, () => ({ contents: 'export {};', loader: 'js' }));
  },
};

/**
 * The browser app, bundled in memory by esbuild (TypeScript, Preact, uPlot and core's zod job schema):
 * a fresh clone needs no build step and nothing is written next to the sources. Takes well under a second.
 */
export async function bundleDashboard(): Promise<Map<string, BundledAsset>> {
  const result = await build({
    entryPoints: [join(HERE, 'web/main.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    outdir: '/assets',
    entryNames: 'app',
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [englishOnlyZod],
  });
  const types: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
  return new Map(
    result.outputFiles.map((f) => {
      const name = f.path.slice(f.path.lastIndexOf('/') + 1);
      return [name, { type: types[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream', body: Buffer.from(f.contents) }];
    }),
  );
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Needs no token: the API's auth hook lets it through (the page holds no data of its own). */
    public?: boolean;
    /** Answers while Redis is unreachable. */
    withoutRedis?: boolean;
  }
}

// Pages, not API: left out of the OpenAPI document.
const UI_ROUTE = { config: { public: true, withoutRedis: true }, schema: { hide: true } };

// The page holds a bearer token: nothing may load from another origin, and no inline script runs.
const CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

// One bundle per process, however many servers it starts (tests start several).
let bundled: Promise<Map<string, BundledAsset>> | undefined;

/**
 * Serves the dashboard under `prefix` (default /ui): the bundle from memory, index.html and style.css
 * from public/ through @fastify/static. Call it inside a plugin: its hook and decorator stay there.
 */
export async function serveDashboard(app: FastifyInstance, prefix = '/ui'): Promise<void> {
  const assets = await (bundled ??= bundleDashboard());
  await app.register(fastifyStatic, { root: join(HERE, '../public'), serve: false });
  app.addHook('onSend', async (_req, reply) => {
    if (reply.request.routeOptions.config.public) reply.header('content-security-policy', CSP).header('x-content-type-options', 'nosniff');
  });
  app.get(prefix, UI_ROUTE, (_req, reply) => reply.redirect(`${prefix}/`));
  app.get(`${prefix}/`, UI_ROUTE, (_req, reply) => reply.header('cache-control', 'no-cache').sendFile('index.html'));
  app.get(`${prefix}/style.css`, UI_ROUTE, (_req, reply) => reply.header('cache-control', 'no-cache').sendFile('style.css'));
  for (const [name, asset] of assets) {
    app.get(`${prefix}/${name}`, UI_ROUTE, (_req, reply) => reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body));
  }
}
