#!/usr/bin/env node
// `npm test`: everything the suite needs on a fresh clone, then the suite. Plain Node so it runs before
// any dependency is installed: installs packages when the lockfile changed, starts Redis when nothing
// answers on REDIS_URL, installs chromium when missing, typechecks, runs vitest and prints one closing
// "N passed, N failed" line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

// 1. Dependencies: npm ci when node_modules is missing or older than the lockfile.
const installed = join(root, 'node_modules/.package-lock.json');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(join(root, 'package-lock.json')).mtimeMs) {
  console.log('detq test: installing dependencies (npm ci)');
  // onnxruntime-node's own install script would download CUDA binaries; its CPU binaries ship in the package.
  run('npm', ['ci', '--no-audit', '--no-fund'], { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
}

// 2. Redis for the distributed tests.
const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const ping = () =>
  new Promise((resolve) => {
    const s = createConnection({ host: url.hostname, port: Number(url.port || 6379) });
    s.setTimeout(1000);
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => (s.destroy(), resolve(d.toString().startsWith('+PONG'))));
    s.once('error', () => resolve(false));
    s.once('timeout', () => (s.destroy(), resolve(false)));
  });
if (!(await ping())) {
  console.log(`detq test: nothing answers on ${url.host}; starting redis-server`);
  // With AOF on, as detq requires of a production Redis (workers and the API refuse one without persistence).
  const dir = mkdtempSync(join(tmpdir(), 'detq-test-redis-'));
  const r = spawnSync('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', url.port || '6379', '--dir', dir, '--save', '', '--appendonly', 'yes'], { stdio: 'inherit' });
  if (r.error || r.status !== 0) {
    console.error('detq test: could not start redis-server (install it, e.g. apt-get install redis-server, or set REDIS_URL)');
    process.exit(1);
  }
  for (let i = 0; i < 50 && !(await ping()); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await ping())) {
    console.error('detq test: redis-server did not come up');
    process.exit(1);
  }
}

// 3. Chromium for the dashboard's browser tests: Debian's package, installed when missing.
const hasChromium = () => ['/usr/bin/chromium', '/usr/bin/chromium-browser', process.env.CHROMIUM_PATH].some((p) => p && existsSync(p));
if (!hasChromium()) {
  console.log('detq test: no chromium; installing Debian\'s chromium package (apt-get)');
  const [bin, ...pre] = [...(process.getuid?.() === 0 ? [] : ['sudo', '-n']), 'apt-get'];
  const apt = (...args) => spawnSync(bin, [...pre, ...args], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  // A fresh machine may have no package lists yet: update only when the first try fails.
  if (!apt('install', '-y', '--no-install-recommends', 'chromium')) apt('update') && apt('install', '-y', '--no-install-recommends', 'chromium');
  if (!hasChromium()) {
    console.error('detq test: could not install chromium (apt-get install chromium, or set CHROMIUM_PATH)');
    process.exit(1);
  }
}

// 4. Types, then the suite.
run('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']);
run('npx', ['tsc', '-p', 'apps/dashboard/tsconfig.json', '--noEmit']);
const report = join(tmpdir(), `detq-vitest-${process.pid}.json`);
const vitest = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
}
process.exit(vitest.status ?? 1);
