import { isAbsolute, relative, resolve } from 'node:path';
import { DetqError } from './errors';

/**
 * Record keys name output files (YOLO labels, previews), so a key must never reach outside the output
 * root. Like tar, normalising drops a leading `/`, empty and `.` segments; what cannot be made safe
 * (`..`, backslashes, NUL, traversal hidden behind percent-encoding) is refused: that image gets a
 * BAD_KEY record. `s3://bucket/` keys (inline lists, manifests) are checked on their object key.
 */
const URI_RE = /^([a-z][a-z0-9+.-]*:\/\/[^/]*\/)(.*)$/i;

function splitUri(key: string): [string, string] {
  const m = URI_RE.exec(key);
  return m ? [m[1]!, m[2]!] : ['', key];
}

export function normaliseKey(raw: string): string {
  const [scheme, path] = splitUri(raw);
  return scheme + path.split('/').filter((s) => s !== '' && s !== '.').join('/');
}

function pathProblem(path: string): string | undefined {
  if (path === '') return 'is empty';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'is absolute';
  if (path.split('/').includes('..')) return "contains a '..' segment";
  return undefined;
}

/** Why a (normalised) key is unsafe as a path under an output root; undefined when it is safe. */
export function keyProblem(key: string): string | undefined {
  const path = splitUri(key)[1];
  const plain = pathProblem(path);
  if (plain) return plain;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return undefined; // not valid percent-encoding, so nothing decodes it into a traversal either
  }
  const hidden = decoded === path ? undefined : pathProblem(decoded);
  return hidden && `once percent-decoded ${hidden}`;
}

/**
 * The path of `rel` under `root`, refusing anything that would land outside it: every output writer
 * goes through this, whatever the key's origin (defence in depth behind keyProblem).
 */
export function resolveInside(root: string, rel: string): string {
  const problem = rel.includes('\0') ? 'contains a NUL byte' : undefined;
  const path = resolve(root, rel);
  const back = relative(resolve(root), path);
  if (problem || back === '' || back.startsWith('..') || isAbsolute(back))
    throw new DetqError('UNSAFE_PATH', `refusing to write ${JSON.stringify(rel)}: it would leave the output root ${root}`);
  return path;
}
