import { open } from 'node:fs/promises';
import { FatalError } from '@detq/core';
import { ONNX, readVarint, WIRE_LEN, wireFields } from './onnx-protobuf';

/** What detq needs from an Ultralytics ONNX export's metadata_props. */
export interface ModelMetadata {
  names: string[];
  imgsz?: [number, number];
  stride: number;
  task?: string;
  /** All raw key/value pairs, for provenance. */
  props: Record<string, string>;
}

// ONNX is protobuf: ModelProto field 14 is `repeated StringStringEntryProto metadata_props` (key=1, value=2).
// We walk the top-level wire format and skip the (large) graph by its length prefix, so reading the
// metadata never parses the weights.
const METADATA_PROPS = ONNX.MODEL.METADATA_PROPS;

function parseEntry(buf: Buffer): [string, string] {
  let key = '';
  let value = '';
  for (const f of wireFields(buf)) {
    if (f.wire !== WIRE_LEN) continue;
    if (f.field === 1) key = buf.toString('utf8', f.valueStart, f.end);
    else if (f.field === 2) value = buf.toString('utf8', f.valueStart, f.end);
  }
  return [key, value];
}

/** Reads metadata_props from an ONNX file without loading the whole file into memory. */
export async function readOnnxMetadataProps(path: string): Promise<Record<string, string>> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const props: Record<string, string> = {};
    let pos = 0;
    const head = Buffer.alloc(20);
    while (pos < size) {
      const { bytesRead } = await fh.read(head, 0, 20, pos);
      const view = head.subarray(0, bytesRead);
      const [tag, p1] = readVarint(view, 0);
      const wire = tag & 7;
      if (wire === 0) {
        pos += readVarint(view, p1)[1];
      } else if (wire === 2) {
        const [len, p2] = readVarint(view, p1);
        if (tag >>> 3 === METADATA_PROPS) {
          const entry = Buffer.alloc(len);
          await fh.read(entry, 0, len, pos + p2);
          const [k, v] = parseEntry(entry);
          props[k] = v;
        }
        pos += p2 + len;
      } else if (wire === 5) pos += p1 + 4;
      else if (wire === 1) pos += p1 + 8;
      else throw new Error(`unexpected protobuf wire type ${wire}`);
    }
    return props;
  } finally {
    await fh.close();
  }
}

/** Parses Ultralytics' Python-literal `names` ({0: 'person', 1: "it's"}) into an index-ordered list. */
export function parseNames(text: string): string[] {
  const names: string[] = [];
  for (const m of text.matchAll(/(\d+)\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")/g)) {
    names[Number(m[1])] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return Array.from(names, (n, i) => n ?? String(i));
}

export async function readOnnxModelMetadata(path: string): Promise<ModelMetadata> {
  let props: Record<string, string>;
  try {
    props = await readOnnxMetadataProps(path);
  } catch (err) {
    throw new FatalError('BAD_MODEL', `cannot read ONNX model ${path}: ${(err as Error).message}`, { cause: err });
  }
  const imgsz = props.imgsz?.match(/\d+/g)?.map(Number);
  const meta: ModelMetadata = {
    names: props.names ? parseNames(props.names) : [],
    stride: Number(props.stride ?? 32) || 32,
    props,
  };
  if (imgsz && imgsz.length >= 1) meta.imgsz = [imgsz[0]!, imgsz[1] ?? imgsz[0]!];
  if (props.task) meta.task = props.task;
  return meta;
}
