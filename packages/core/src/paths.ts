import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file lives in packages/core/src). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The shared data folder: DETQ_SHARED_DIR, else ../shared beside the checkout. */
export function sharedDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.DETQ_SHARED_DIR ?? join(REPO_ROOT, '..', 'shared'));
}

export function sharedPath(...parts: string[]): string | undefined {
  const p = join(sharedDir(), ...parts);
  return existsSync(p) ? p : undefined;
}
