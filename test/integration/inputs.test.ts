import { copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EXIT_CODES, keyProblem, normaliseKey, runSummarySchema, type ImageRecord } from '@detq/core';
import { main } from '@detq/cli';
import { OutputWriter } from '@detq/formats';
import { readModelMetadata, readNamesFile } from '@detq/inference';
import { inputFromArgument, listImages, type InputSpec } from '@detq/pipeline';
import { FileStore, RoutingStore, S3Store } from '@detq/storage';
import { COCO_IMAGES, cocoImageNames, SHARED, tempDir } from '../helpers/fixtures';
import { startS3Server, type TestS3Server } from '../helpers/s3-server';

const detq = (...args: string[]) => main(['node', 'detq', ...args]);
const files = new FileStore();
const keysOf = async (spec: InputSpec, o: { include?: string[]; exclude?: string[]; startAfter?: string } = {}) => {
  const keys: string[] = [];
  for await (const image of listImages(spec, { store: files, ...o })) keys.push(image.key);
  return keys;
};
const records = async (out: string): Promise<ImageRecord[]> =>
  (await readFile(join(out, 'detections.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ImageRecord);

async function allFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

function captureStderr() {
  const chunks: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (chunks.push(String(c)), true));
  return () => chunks.join('');
}

describe('one lister for every kind of input', () => {
  let root: string;
  let data: string;
  const [a, b, c] = cocoImageNames(3) as [string, string, string];

  beforeAll(async () => {
    // data/: real files, as a DVC cache or a NAS share holds them. set/: what the user points detq at.
    root = await tempDir();
    data = join(root, 'data');
    const set = join(root, 'set');
    await mkdir(join(data, 'cache', 'x'), { recursive: true });
    await mkdir(join(set, 'real', '.hidden-dir'), { recursive: true });
    await copyFile(join(COCO_IMAGES, a), join(data, 'cache', a));
    await copyFile(join(COCO_IMAGES, b), join(data, 'cache', 'x', b));
    await copyFile(join(COCO_IMAGES, c), join(set, 'real', c));
    await copyFile(join(COCO_IMAGES, c), join(set, 'real', '.hidden.jpg'));
    await copyFile(join(COCO_IMAGES, c), join(set, 'real', '.hidden-dir', 'in-hidden.jpg'));
    await writeFile(join(set, 'real', 'notes.txt'), 'not an image');
    await symlink(join(data, 'cache', a), join(set, 'linked-file.jpg')); // a symlinked file
    await symlink(join(data, 'cache'), join(set, 'linked-dir')); // a symlinked folder
    await symlink(set, join(set, 'real', 'loop')); // a cycle back to the root
    await symlink(join(root, 'nowhere.jpg'), join(set, 'broken.jpg')); // a dangling link stays listed
  });

  it('walks a folder through symlinked files and folders, ends the cycle, skips hidden entries, in key order', async () => {
    const keys = await keysOf({ kind: 'folder', path: join(root, 'set') });
    expect(keys).toEqual(['broken.jpg', 'linked-dir/x/' + b, `linked-dir/${a}`, 'linked-file.jpg', `real/${c}`].sort((p, q) => Buffer.compare(Buffer.from(p), Buffer.from(q))));
  });

  it('resumes a listing after key K, for sorted and for ordered kinds', async () => {
    const folder: InputSpec = { kind: 'folder', path: join(root, 'set') };
    const all = await keysOf(folder);
    for (let i = 0; i < all.length; i++) expect(await keysOf(folder, { startAfter: all[i]! })).toEqual(all.slice(i + 1));
    const images: InputSpec = { kind: 'images', uris: ['s3://in/b.jpg', 's3://in/a.jpg', 's3://in/c.jpg'] };
    expect(await keysOf(images, { startAfter: 's3://in/a.jpg' })).toEqual(['s3://in/c.jpg']);
    await expect(keysOf(images, { startAfter: 's3://in/zzz.jpg' })).rejects.toMatchObject({ code: 'BAD_CURSOR' });
  });

  it('applies include/exclude on every kind', async () => {
    const set = join(root, 'set');
    await writeFile(join(root, 'list.txt'), `set/real/${c}\nset/linked-file.jpg\nset/real/notes.txt\n`);
    await writeFile(join(root, 'manifest.jsonl'), [`"set/real/${c}"`, '{"uri": "set/linked-file.jpg"}', '"set/real/notes.txt"'].join('\n'));
    await writeFile(join(root, 'manifest.csv'), `uri,split\nset/real/${c},train\nset/linked-file.jpg,val\nset/real/notes.txt,val\n`);
    const cases: [InputSpec, string[], string[]][] = [
      [{ kind: 'folder', path: set }, [`real/${c}`], ['real/*.jpg']],
      [{ kind: 'glob', pattern: `${set}/**/*.jpg` }, ['linked-file.jpg'], ['linked-*.jpg']],
      [{ kind: 'list', uri: join(root, 'list.txt') }, [`set/real/${c}`], ['**/real/*.jpg']],
      [{ kind: 'manifest', uri: join(root, 'manifest.jsonl') }, ['set/linked-file.jpg'], ['**/linked-*']],
      [{ kind: 'manifest', uri: join(root, 'manifest.csv') }, ['set/linked-file.jpg'], ['**/linked-*']],
      [{ kind: 'images', uris: ['s3://in/x/a.jpg', 's3://in/y/b.jpg'] }, ['s3://in/y/b.jpg'], ['y/**']],
    ];
    for (const [spec, want, include] of cases) {
      expect(await keysOf(spec, { include }), spec.kind).toEqual(want);
      const excluded = await keysOf(spec, { exclude: include });
      expect(excluded.filter((k) => want.includes(k)), spec.kind).toEqual([]);
      expect(excluded.length, spec.kind).toBeGreaterThan(0);
    }
    // Explicit lists keep every entry (a refused format gets its error record); discovery kinds keep images.
    expect(await keysOf({ kind: 'list', uri: join(root, 'list.txt') })).toContain('set/real/notes.txt');
    expect(await keysOf({ kind: 'folder', path: set })).not.toContain('real/notes.txt');
  });

  it('classifies a CLI argument into one kind', async () => {
    const store = new RoutingStore();
    expect(await inputFromArgument(join(root, 'set'), store)).toEqual({ kind: 'folder', path: join(root, 'set') });
    expect((await inputFromArgument(join(root, 'list.txt'), store)).kind).toBe('list');
    expect((await inputFromArgument(join(root, 'manifest.csv'), store)).kind).toBe('manifest');
    expect((await inputFromArgument(`${root}/**/*.jpg`, store)).kind).toBe('glob');
    expect((await inputFromArgument(join(root, 'set', 'linked-file.jpg'), store)).kind).toBe('file');
    expect(await inputFromArgument('s3://in/set/', store)).toEqual({ kind: 'prefix', uri: 's3://in/set/' });
  });

  describe('an S3 prefix and an S3 manifest against a real S3-protocol server', () => {
    let server: TestS3Server;
    let s3: S3Store;
    const saved = { ...process.env };
    beforeAll(async () => {
      server = await startS3Server(['in']);
      Object.assign(process.env, server.env);
      s3 = new S3Store();
      for (const k of ['p/a.jpg', 'p/b/c.jpg', 'p/b/d.png', 'p/.e.jpg', 'p/f.txt']) await s3.put(`s3://in/${k}`, 'x');
      await s3.put('s3://in/p/m.jsonl', '"s3://in/p/a.jpg"\n"b/c.jpg"\n"/etc/passwd"\n"../../other/x.jpg"\n');
    });
    afterAll(async () => {
      s3.destroy();
      await server.stop();
      process.env = saved;
    });

    it('lists page by page in key order, resumes after a key, filters; a manifest in S3 only names S3 objects', async () => {
      const list = async (spec: InputSpec, o: { include?: string[]; exclude?: string[]; startAfter?: string } = {}) => {
        const got: { key: string; uri: string }[] = [];
        for await (const { key, uri } of listImages(spec, { store: s3, ...o })) got.push({ key, uri });
        return got;
      };
      const prefix: InputSpec = { kind: 'prefix', uri: 's3://in/p/' };
      expect((await list(prefix)).map((i) => i.key)).toEqual(['a.jpg', 'b/c.jpg', 'b/d.png']);
      expect((await list(prefix, { startAfter: 'a.jpg' })).map((i) => i.key)).toEqual(['b/c.jpg', 'b/d.png']);
      expect((await list(prefix, { include: ['**/*.png', '*.txt'] })).map((i) => i.key)).toEqual(['b/d.png', 'f.txt']);
      expect((await list(prefix, { exclude: ['b/**'] })).map((i) => i.key)).toEqual(['a.jpg']);
      expect(await list({ kind: 'manifest', uri: 's3://in/p/m.jsonl' })).toEqual([
        { key: 's3://in/p/a.jpg', uri: 's3://in/p/a.jpg' },
        { key: 'b/c.jpg', uri: 's3://in/p/b/c.jpg' },
        { key: 'etc/passwd', uri: 's3://in/p/etc/passwd' },
        { key: '../../other/x.jpg', uri: 's3://in/p/../../other/x.jpg' },
      ]);
    });
  });
});

describe('keys are safe by construction', () => {
  it('normalises like tar and refuses what cannot be made safe', () => {
    expect(normaliseKey('/abs/./a//b.jpg')).toBe('abs/a/b.jpg');
    expect(normaliseKey('s3://in//x/./y.jpg')).toBe('s3://in/x/y.jpg');
    for (const bad of ['../a.jpg', 'a/../../b.jpg', 'a\\..\\b.jpg', 'a\0.jpg', '%2e%2e/a.jpg', 'a/%2E%2E%2Fb.jpg', '%2fetc/x.jpg', 's3://in/../x.jpg'])
      expect(keyProblem(normaliseKey(bad)), bad).toBeDefined();
    for (const good of ['a.jpg', 'a/b c/ü.jpg', 's3://in/x/y.jpg', '100%.jpg', 'a..b.jpg']) expect(keyProblem(normaliseKey(good)), good).toBeUndefined();
  });

  it('list files and manifests with .., absolute paths and URL-encoded traversal: BAD_KEY records, nothing outside the output', async () => {
    const root = await tempDir();
    const base = join(root, 'base');
    const [a, b] = cocoImageNames(2) as [string, string];
    await mkdir(join(root, 'a'), { recursive: true });
    await mkdir(join(base, 'in', '%2e%2e'), { recursive: true });
    await copyFile(join(COCO_IMAGES, a), join(root, 'a', 'bus.jpg'));
    await copyFile(join(COCO_IMAGES, b), join(base, 'in', 'ok.jpg'));
    await copyFile(join(COCO_IMAGES, b), join(base, 'in', '%2e%2e', 'enc.jpg'));
    const lines = ['in/ok.jpg', '../a/bus.jpg', 'in/../../a/bus.jpg', join(root, 'a', 'bus.jpg'), 'in/%2e%2e/enc.jpg'];
    await writeFile(join(base, 'list.txt'), `${lines.join('\n')}\n`);
    await writeFile(join(base, 'manifest.jsonl'), `${lines.map((l) => JSON.stringify({ uri: l })).join('\n')}\n`);
    const want = {
      'in/ok.jpg': undefined,
      '../a/bus.jpg': 'BAD_KEY',
      'in/../../a/bus.jpg': 'BAD_KEY',
      [join(root, 'a', 'bus.jpg').slice(1)]: undefined, // an absolute path loses its leading '/', as in tar
      'in/%2e%2e/enc.jpg': 'BAD_KEY',
    };
    for (const input of ['list.txt', 'manifest.jsonl']) {
      const out = join(base, `out-${input}`);
      captureStderr();
      expect(await detq('label', join(base, input), '--out', out, '--formats', 'jsonl,yolo,coco,labelstudio', '--previews', '5')).toBe(0);
      vi.restoreAllMocks();
      const got = Object.fromEntries((await records(out)).map((r) => [r.key, r.error?.code]));
      expect(got, input).toEqual(want);
      // Every file the runs wrote is under their --out, and labels under labels/.
      const all = await allFiles(root);
      const inputs = [join(base, 'in'), join(root, 'a'), join(base, 'list.txt'), join(base, 'manifest.jsonl')];
      expect(all.filter((f) => !inputs.some((p) => f.startsWith(p)) && !f.startsWith(join(base, 'out-')))).toEqual([]);
      const written = all.filter((f) => f.startsWith(`${out}/`));
      const labels = written.filter((p) => p.startsWith(`${join(out, 'labels')}/`)).map((p) => p.slice(out.length + 1));
      expect(labels.sort(), input).toEqual(['labels/classes.txt', 'labels/in/ok.txt', `labels/${join(root, 'a', 'bus.txt').slice(1)}`].sort());
    }
  });
});

describe('output writers refuse paths that leave their root', () => {
  const model = { name: 'm.onnx', sha256: '0'.repeat(64), engine: 'onnxruntime-cpu' as const, imgsz: [640, 640] as [number, number] };
  const params = { conf: 0.25, iou: 0.7, maxDet: 300, agnosticNms: false, multiLabel: false };
  const record = (key: string): ImageRecord => ({ key, width: 10, height: 10, detections: [{ box: [1, 1, 5, 5], confidence: 0.9, class_id: 0, class_name: 'a' }], model, params });
  const unsafe = ['../x.jpg', 'a/../../x.jpg', '/etc/x.jpg', 'a\0b.jpg'];

  it('writeFile (previews, manifest, summary): relative to the output and to a sub-folder', async () => {
    const out = join(await tempDir(), 'out');
    const writer = await OutputWriter.open({ outUri: out, formats: ['jsonl'], names: ['a'], store: new FileStore() });
    for (const rel of unsafe) {
      await expect(writer.writeFile(rel, 'x'), rel).rejects.toMatchObject({ code: 'OUTPUT_FAILED' });
      await expect(writer.writeFile(rel.replace('../', '../../'), 'x', 'previews'), rel).rejects.toMatchObject({ code: 'OUTPUT_FAILED' });
    }
    await expect(writer.writeFile('../labels/x.jpg', 'x', 'previews')).rejects.toMatchObject({ code: 'OUTPUT_FAILED' });
    await writer.writeFile('ok.jpg', 'x', 'previews');
    expect(await writer.finish()).toEqual([join(out, 'detections.jsonl'), join(out, 'previews/ok.jpg')]);
  });

  it('the YOLO writer: a record whose key escapes labels/ fails the output instead of writing it', async () => {
    for (const key of ['../x.jpg', '../../x.jpg', 'a/../../x.jpg']) {
      const dir = await tempDir();
      const out = join(dir, 'out');
      const writer = await OutputWriter.open({ outUri: out, formats: ['jsonl', 'yolo'], names: ['a'], store: new FileStore() });
      await writer.add(record(key));
      await expect(writer.finish(), key).rejects.toMatchObject({ code: 'OUTPUT_FAILED' });
      expect((await allFiles(dir)).map((f) => f.slice(out.length + 1)).sort(), key).toEqual(['detections.jsonl', 'labels/classes.txt']);
    }
  });
});

describe('empty inputs', () => {
  afterEach(() => vi.restoreAllMocks());

  it('exit 5 naming the input and the filters, unless --allow-empty (exit 0, empty outputs, a summary)', async () => {
    const empty = await tempDir();
    await writeFile(join(empty, 'readme.md'), 'no images here');
    let err = captureStderr();
    expect(await detq('label', empty, '--out', join(empty, 'out'))).toBe(EXIT_CODES.INPUT_NOT_FOUND);
    expect(err()).toContain(`no images found under ${empty}\n`);
    err = captureStderr();
    expect(await detq('label', COCO_IMAGES, '--out', join(empty, 'out'), '--include', '*.png', '--exclude', 'x/**')).toBe(EXIT_CODES.INPUT_NOT_FOUND);
    expect(err()).toContain(`no images found under ${COCO_IMAGES} (include *.png; exclude x/**)`);
    captureStderr();
    const out = join(empty, 'out');
    expect(await detq('label', empty, '--out', out, '--allow-empty')).toBe(0);
    expect(await readFile(join(out, 'detections.jsonl'), 'utf8')).toBe('');
    const summary = runSummarySchema.parse(JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')));
    expect(summary.counts).toMatchObject({ total: 0, labelled: 0, failed: 0 });
  });
});

describe('class names for every model kind', () => {
  it('reads a TorchScript export`s names from its archive on the CPU', async () => {
    const meta = await readModelMetadata(join(SHARED, 'models/yolo11n-cuda-fp32.torchscript'));
    expect(meta.names).toHaveLength(80);
    expect(meta.names.slice(0, 3)).toEqual(['person', 'bicycle', 'car']);
    expect(meta.names[62]).toBe('tv');
    expect(meta.imgsz).toEqual([640, 640]);
  });

  it('--names takes a data YAML (list or map) or a text file, and drives --classes', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'list.yaml'), 'names:\n  - cat\n  - dog\n');
    await writeFile(join(dir, 'map.yml'), "names:\n  0: cat\n  2: 'hot dog'\n");
    await writeFile(join(dir, 'names.txt'), 'cat\n\ndog\n');
    expect(await readNamesFile(join(dir, 'list.yaml'))).toEqual(['cat', 'dog']);
    expect(await readNamesFile(join(dir, 'map.yml'))).toEqual(['cat', '1', 'hot dog']);
    expect(await readNamesFile(join(dir, 'names.txt'))).toEqual(['cat', 'dog']);
    const many = Array.from({ length: 80 }, (_, i) => (i === 5 ? 'autobus' : `c${i}`));
    await writeFile(join(dir, 'coco.txt'), many.join('\n'));
    const bus = join(SHARED, 'datasets/samples/images/bus.jpg');
    const out = join(dir, 'out');
    captureStderr();
    expect(await detq('label', bus, '--out', out, '--names', join(dir, 'coco.txt'), '--classes', 'autobus')).toBe(0);
    vi.restoreAllMocks();
    expect((await records(out))[0]!.detections.map((d) => d.class_name)).toEqual(['autobus']);
  });
});
