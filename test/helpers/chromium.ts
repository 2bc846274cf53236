import { existsSync } from 'node:fs';

/**
 * Debian's chromium, which `npm test` (scripts/test.mjs) installs when it is missing; CHROMIUM_PATH
 * points elsewhere.
 */
export function chromiumPath(): string {
  const path = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  if (!path || !existsSync(path)) throw new Error('no chromium: run `npm test` (it installs it) or `apt-get install -y chromium`, or set CHROMIUM_PATH');
  return path;
}
