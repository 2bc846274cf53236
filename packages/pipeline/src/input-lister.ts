import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, relative, resolve } from 'node:path';
import picomatch from 'picomatch';
import { FatalError } from '@detq/core';
import { isS3Uri, type ObjectStore } from '@detq/storage';
import type { LabelSource } from './label-stream';

/**
 * File names listed from folders and prefixes. Formats detq refuses (svg, pdf, heic, bmp) are listed
 * on purpose: each gets an UNSUPPORTED_FORMAT record instead of silently vanishing from the results.
 */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'jpe', 'png', 'webp', 'gif', 'tif', 'tiff', 'avif', 'heic', 'heif', 'bmp', 'svg', 'pdf', 'jxl'];
const IMAGE_RE = new RegExp(`\\.(${IMAGE_EXTENSIONS.join('|')})$`, 'i');
const LIST_RE = /\.(txt|lst|list)$/i;

export function isImageName(name: string): boolean {
  return IMAGE_RE.test(name) && !basename(name).startsWith('.');
}

/**
 * Expands a `detq label` input into sources, lazily: a folder (recursive), one file, a glob, a text file
 * of paths/URIs (one a line, # comments), or an s3://bucket/prefix/. Keys are relative to the input root.
 */
export async function* listInputs(input: string, store: ObjectStore): AsyncGenerator<LabelSource> {
  if (isS3Uri(input)) {
    const prefix = input.endsWith('/') ? input : `${input}/`;
    let any = false;
    for await (const e of store.list(prefix)) {
      if (!isImageName(e.uri)) continue;
      any = true;
      yield { key: e.uri.slice(prefix.length), uri: e.uri };
    }
    if (!any && (await store.exists(input))) yield { key: basename(input), uri: input };
    return;
  }
  if (picomatch.scan(input).isGlob) {
    const { base, glob } = picomatch.scan(input);
    const match = picomatch(glob, { dot: false });
    const root = resolve(base || '.');
    for await (const e of store.list(root)) {
      const rel = relative(root, e.uri);
      if (match(rel)) yield { key: rel, uri: e.uri };
    }
    return;
  }
  const info = await stat(input).catch(() => undefined);
  if (!info) throw new FatalError('INPUT_NOT_FOUND', `input not found: ${input}`);
  if (info.isDirectory()) {
    const root = resolve(input);
    for await (const e of store.list(root)) if (isImageName(e.uri)) yield { key: relative(root, e.uri), uri: e.uri };
  } else if (LIST_RE.test(input)) {
    const dir = dirname(resolve(input));
    for (const raw of (await readFile(input, 'utf8')).split(/\r?\n/)) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const uri = isS3Uri(line) || isAbsolute(line) ? line : resolve(dir, line);
      yield { key: line, uri };
    }
  } else {
    yield { key: basename(input), uri: resolve(input) };
  }
}
