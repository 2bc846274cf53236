#!/usr/bin/env node
// Lists the node_modules folders the GPU suite needs on a machine that has no npm registry: the runtime
// closure of detq's workspace packages plus vitest, tsx and the addon's build tools. Printed one per
// line, relative to the repository root, for `tar -T -` (device-run.sh's packer).
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Every workspace package (the CLI imports most of them), plus the test runner and the addon's build tools.
const workspaces = readdirSync(join(root, 'node_modules', '@detq')).map((n) => `@detq/${n}`);
// Extra package names on the command line join them (infra/scripts/device-e2e-pack.sh adds s3rver).
const roots = [...workspaces, 'vitest', 'tsx', 'cmake-js', 'node-addon-api', 'node-api-headers', ...process.argv.slice(2)];
const seen = new Set();
function visit(name, fromDir) {
  // Node's resolution: the nearest node_modules up from the requiring package.
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) {
      const real = realpathSync(candidate);
      const rel = relative(root, candidate);
      if (seen.has(rel)) return;
      seen.add(rel);
      const pkg = JSON.parse(readFileSync(join(real, 'package.json'), 'utf8'));
      const deps = { ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies };
      for (const d of Object.keys(deps)) visit(d, real);
      return;
    }
    if (dir === dirname(dir)) return;
  }
}
for (const r of roots) visit(r, root);
for (const rel of [...seen].sort()) process.stdout.write(`${rel}\n`);
