import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import picomatch from 'picomatch';
import { compileGlobs, DetqError, FatalError, normaliseKey, s3UriSchema, type JobInput } from '@detq/core';
import { isS3Uri, joinUri, type ObjectStore } from '@detq/storage';

/**
 * The one input model and lister of `detq label`, the planner and (through the job spec) the API.
 * Every kind lists lazily in a stable order and resumes "after key K", so a planner can persist a cursor.
 */
export type InputSpec =
  /** A local folder, recursive: follows symlinks to files and folders (cycle-safe), skips hidden entries. */
  | { kind: 'folder'; path: string }
  /** One image: a local file or an s3:// object. */
  | { kind: 'file'; uri: string }
  /** A local glob, e.g. `data/**\/*.jpg`. */
  | { kind: 'glob'; pattern: string }
  /** A text file of paths or URIs, one a line, `#` comments; local or s3://. */
  | { kind: 'list'; uri: string }
  /** A .jsonl (`"uri"` or `{"uri": …}` a line) or .csv (URI in the first column) manifest; local or s3://. */
  | { kind: 'manifest'; uri: string }
  /** Every object under an s3:// prefix. */
  | { kind: 'prefix'; uri: string }
  /** An inline list of URIs. */
  | { kind: 'images'; uris: readonly string[] };

export interface InputFilter {
  /** Globs on the key; an image must match one (default: the image extensions, for folder/glob/prefix). */
  include?: readonly string[];
  /** Globs on the key; an image matching one is left out. */
  exclude?: readonly string[];
}

export interface ListOptions extends InputFilter {
  store: ObjectStore;
  /** Resume a listing after the image with this key (a cursor a planner persisted). */
  startAfter?: string;
}

/** One listed image. `key` is normalised but not yet judged: labelStream gives unsafe keys BAD_KEY records. */
export interface ListedImage {
  key: string;
  uri: string;
  /** Bytes, where the listing says (S3 prefixes): caps are checked before any download. */
  size?: number;
  etag?: string;
}

/**
 * File names listed from folders and prefixes. Formats detq refuses (svg, pdf, heic, bmp) are listed
 * on purpose: each gets an UNSUPPORTED_FORMAT record instead of silently vanishing from the results.
 */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'jpe', 'png', 'webp', 'gif', 'tif', 'tiff', 'avif', 'heic', 'heif', 'bmp', 'svg', 'pdf', 'jxl'];
const IMAGE_RE = new RegExp(`\\.(${IMAGE_EXTENSIONS.join('|')})$`, 'i');
const LIST_RE = /\.(txt|lst|list)$/i;
const MANIFEST_RE = /\.(jsonl|csv)$/i;

export function isImageName(name: string): boolean {
  return IMAGE_RE.test(name) && !basename(name).startsWith('.');
}

/** What a `detq label <input>` argument is. */
export async function inputFromArgument(arg: string, store: ObjectStore): Promise<InputSpec> {
  if (isS3Uri(arg)) {
    if (LIST_RE.test(arg)) return { kind: 'list', uri: arg };
    if (MANIFEST_RE.test(arg)) return { kind: 'manifest', uri: arg };
    if (!arg.endsWith('/') && isImageName(arg) && (await store.exists(arg))) return { kind: 'file', uri: arg };
    return { kind: 'prefix', uri: arg };
  }
  if (picomatch.scan(arg).isGlob) return { kind: 'glob', pattern: arg };
  const info = await stat(arg).catch(() => undefined);
  if (!info) throw new FatalError('INPUT_NOT_FOUND', `input not found: ${arg}`);
  if (info.isDirectory()) return { kind: 'folder', path: resolve(arg) };
  if (LIST_RE.test(arg)) return { kind: 'list', uri: resolve(arg) };
  if (MANIFEST_RE.test(arg)) return { kind: 'manifest', uri: resolve(arg) };
  return { kind: 'file', uri: resolve(arg) };
}

/** The input of a distributed job spec. */
export function inputFromJob(input: JobInput): InputSpec {
  if (input.manifest !== undefined) return { kind: 'manifest', uri: input.manifest };
  if (input.images !== undefined) return { kind: 'images', uris: input.images };
  return { kind: 'prefix', uri: input.uri! };
}

export function describeInput(spec: InputSpec): string {
  switch (spec.kind) {
    case 'folder':
      return spec.path;
    case 'glob':
      return spec.pattern;
    case 'images':
      return `${spec.uris.length} listed URIs`;
    default:
      return spec.uri;
  }
}

/** The message of an input that lists nothing: exit code 5 locally, a failed job when distributed. */
export function noImagesMessage(spec: InputSpec, filter: InputFilter = {}): string {
  const parts = [
    filter.include?.length ? `include ${filter.include.join(', ')}` : '',
    filter.exclude?.length ? `exclude ${filter.exclude.join(', ')}` : '',
  ].filter(Boolean);
  return `no images found under ${describeInput(spec)}${parts.length ? ` (${parts.join('; ')})` : ''}`;
}

/** Lists an input's images lazily, in a stable order, filtered by include/exclude. */
export async function* listImages(spec: InputSpec, options: ListOptions): AsyncGenerator<ListedImage> {
  const discovery = spec.kind === 'folder' || spec.kind === 'prefix' || spec.kind === 'glob';
  const match = keyMatcher(options, discovery);
  const keep = (image: ListedImage) => match(image.key);
  if (spec.kind === 'folder' || spec.kind === 'glob' || spec.kind === 'prefix') {
    // Sorted kinds: the cursor is a key bound, so resuming skips whole folders and S3 pages.
    const after = options.startAfter;
    for await (const image of sortedImages(spec, options.store, after)) if ((after === undefined || compareKeys(image.key, after) > 0) && keep(image)) yield image;
    return;
  }
  // Ordered-by-content kinds: the cursor is the key of the last image handled.
  let skipping = options.startAfter !== undefined;
  for await (const image of orderedImages(spec, options.store)) {
    if (skipping) {
      skipping = image.key !== options.startAfter;
      continue;
    }
    if (keep(image)) yield image;
  }
  if (skipping) throw new DetqError('BAD_CURSOR', `cannot resume ${describeInput(spec)}: key ${options.startAfter} is not in it`);
}

// Keys compare as UTF-8 bytes, S3's listing order.
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function keyMatcher(filter: InputFilter, discovery: boolean): (key: string) => boolean {
  // URI keys (inline lists, manifests) are matched on their object key, as prefix keys are.
  const path = (key: string) => key.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*\//i, '');
  // Linear-time globs (core's glob.ts): a tenant's pathological pattern cannot stall a worker's event loop.
  const include = filter.include?.length ? compileGlobs(filter.include) : discovery ? isImageName : () => true;
  const exclude = filter.exclude?.length ? compileGlobs(filter.exclude) : () => false;
  return (key) => include(path(key)) && !exclude(path(key));
}

async function* sortedImages(spec: InputSpec & { kind: 'folder' | 'glob' | 'prefix' }, store: ObjectStore, after: string | undefined): AsyncGenerator<ListedImage> {
  if (spec.kind === 'prefix') {
    const prefix = spec.uri.endsWith('/') ? spec.uri : `${spec.uri}/`;
    let any = false;
    for await (const e of store.list(prefix, after === undefined ? {} : { startAfter: prefix + after })) {
      any = true;
      yield { key: e.uri.slice(prefix.length), uri: e.uri, size: e.size, ...(e.etag && { etag: e.etag }) };
    }
    // `s3://bucket/photo.jpg` names one object rather than a prefix.
    if (!any && after === undefined && !spec.uri.endsWith('/') && (await store.exists(spec.uri))) yield { key: basename(spec.uri), uri: spec.uri };
    return;
  }
  if (spec.kind === 'folder') {
    for await (const key of walkFolder(spec.path, after)) yield { key, uri: join(spec.path, key) };
    return;
  }
  const { base, glob } = picomatch.scan(spec.pattern);
  const root = resolve(base || '.');
  const match = picomatch(glob, { dot: false });
  for await (const key of walkFolder(root, after)) if (match(key)) yield { key, uri: join(root, key) };
}

/**
 * Relative paths of the files under a local folder, depth first, in key (byte) order, one directory in
 * memory at a time. Symlinks to files and folders are followed; a link back to a folder being walked is
 * skipped, so cycles end. Hidden entries (`.name`: .git, .dvc, .DS_Store) are skipped.
 */
async function* walkFolder(root: string, after: string | undefined): AsyncGenerator<string> {
  const rootInfo = await stat(root);
  yield* walk(root, '', new Set([`${rootInfo.dev}:${rootInfo.ino}`]));

  async function* walk(dir: string, rel: string, ancestors: Set<string>): AsyncGenerator<string> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw new FatalError('INPUT_NOT_FOUND', `cannot list ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const items: { name: string; key: string; dir: boolean; id?: string }[] = [];
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const key = rel ? `${rel}/${e.name}` : e.name;
      let isDir = e.isDirectory();
      let id: string | undefined;
      if (e.isSymbolicLink()) {
        // A broken link stays listed as a file: its image gets a READ_FAILED record instead of vanishing.
        const target = await stat(join(dir, e.name)).catch(() => undefined);
        isDir = target?.isDirectory() ?? false;
        if (target && isDir) id = `${target.dev}:${target.ino}`;
      } else if (isDir) {
        const s = await stat(join(dir, e.name));
        id = `${s.dev}:${s.ino}`;
      } else if (!e.isFile()) continue;
      items.push({ name: e.name, key: isDir ? `${key}/` : key, dir: isDir, ...(id && { id }) });
    }
    items.sort((a, b) => compareKeys(a.key, b.key));
    for (const item of items) {
      if (!item.dir) {
        if (after === undefined || compareKeys(item.key, after) > 0) yield item.key;
        continue;
      }
      // Every key below this folder starts with item.key: skip it whole when all of them precede the cursor.
      if (after !== undefined && !after.startsWith(item.key) && compareKeys(item.key, after) < 0) continue;
      if (item.id && ancestors.has(item.id)) continue;
      yield* walk(join(dir, item.name), item.key.slice(0, -1), new Set([...ancestors, item.id!]));
    }
  }
}

async function* orderedImages(spec: InputSpec & { kind: 'file' | 'list' | 'manifest' | 'images' }, store: ObjectStore): AsyncGenerator<ListedImage> {
  if (spec.kind === 'file') {
    yield { key: basename(spec.uri), uri: spec.uri };
    return;
  }
  if (spec.kind === 'images') {
    for (const uri of spec.uris) yield { key: normaliseKey(uri), uri };
    return;
  }
  const text = await store.get(spec.uri).then(
    (b) => b.toString('utf8'),
    (err: unknown) => {
      throw new FatalError('INPUT_NOT_FOUND', `cannot read ${spec.kind} ${spec.uri}: ${(err as Error).message}`, { cause: err });
    },
  );
  if (spec.kind === 'list') for (const entry of listEntries(text)) yield { key: normaliseKey(entry), uri: entryUri(spec.uri, entry) };
  else for (const { entry } of manifestEntries(text, spec.uri)) yield { key: normaliseKey(entry), uri: entryUri(spec.uri, entry) };
}

function* listEntries(text: string): Generator<string> {
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line && !line.startsWith('#')) yield line;
  }
}

function* manifestEntries(text: string, uri: string): Generator<{ line: number; entry: string }> {
  const jsonl = /\.jsonl$/i.test(uri);
  let n = 0;
  for (const raw of text.split(/\r?\n/)) {
    n++;
    const line = raw.trim();
    if (!line) continue;
    let value: unknown;
    try {
      value = jsonl ? JSON.parse(line) : line.split(',')[0]!.trim().replace(/^"|"$/g, '');
    } catch {
      throw new DetqError('BAD_MANIFEST', `manifest ${uri} line ${n}: not JSON`);
    }
    const entry = typeof value === 'object' && value !== null ? (value as { uri?: unknown }).uri : value;
    if (!jsonl && n === 1 && entry === 'uri') continue;
    if (typeof entry !== 'string' || !entry) throw new DetqError('BAD_MANIFEST', `manifest ${uri} line ${n}: no image URI`);
    yield { line: n, entry };
  }
}

/**
 * The image URIs of a manifest with their 1-based line numbers (relative entries resolved against the
 * manifest): what the API checks against a token's scopes at enqueue. A bad line throws BAD_MANIFEST.
 */
export function* manifestImageUris(text: string, manifestUri: string): Generator<{ line: number; uri: string }> {
  for (const { line, entry } of manifestEntries(text, manifestUri)) yield { line, uri: entryUri(manifestUri, entry) };
}

/**
 * Where a list or manifest entry is read from. Relative entries resolve beside the list. A list stored in
 * S3 only ever names S3 objects: a local path in it is taken as a key under the list's prefix, so a job
 * spec can never make a worker read its own files.
 */
function entryUri(listUri: string, entry: string): string {
  if (isS3Uri(listUri)) {
    if (s3UriSchema.safeParse(entry).success) return entry;
    return joinUri(listUri.slice(0, listUri.lastIndexOf('/') + 1), entry);
  }
  if (isS3Uri(entry) || isAbsolute(entry)) return entry;
  return resolve(dirname(listUri), entry);
}
