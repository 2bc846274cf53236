import { randomUUID } from 'node:crypto';
import { mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectEntry, ObjectStore, ReadOptions } from './object-store';

function toPath(uri: string): string {
  return uri.startsWith('file://') ? fileURLToPath(uri) : uri;
}

/** Local filesystem store. Writes go through a temp file and a rename so readers never see half a file. */
export class FileStore implements ObjectStore {
  async get(uri: string, options?: ReadOptions): Promise<Buffer> {
    return readFile(toPath(uri), options?.signal ? { signal: options.signal } : {});
  }

  async put(uri: string, body: Buffer | string): Promise<void> {
    const path = toPath(uri);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
    await writeFile(tmp, body);
    await rename(tmp, path);
  }

  async exists(uri: string): Promise<boolean> {
    return stat(toPath(uri)).then(
      () => true,
      () => false,
    );
  }

  async *list(prefixUri: string): AsyncIterable<ObjectEntry> {
    yield* walk(toPath(prefixUri));
  }
}

// Depth-first in sorted order, one directory in memory at a time, so huge trees list in bounded memory.
async function* walk(dir: string): AsyncIterable<ObjectEntry> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) yield* walk(path);
    else if (e.isFile()) {
      const s = await stat(path);
      yield { uri: path, size: s.size, etag: `${s.size}-${Math.floor(s.mtimeMs)}` };
    }
  }
}
