// Hand-encoded ONNX protobuf for tests that need a model of a particular shape (no onnx package in
// Node): just the fields ONNX Runtime reads.
type Field = Buffer;

function varint(n: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
const tag = (field: number, wire: number) => varint((field << 3) | wire);
const int = (field: number, n: number | bigint): Field => Buffer.concat([tag(field, 0), varint(n)]);
const bytes = (field: number, b: Buffer | string): Field => {
  const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  return Buffer.concat([tag(field, 2), varint(buf.length), buf]);
};
const msg = (field: number, ...parts: Field[]): Field => bytes(field, Buffer.concat(parts));

const FLOAT = 1;
const INT64 = 7;

function valueInfo(field: number, name: string, dims: (number | string)[]): Field {
  const dim = (d: number | string) => msg(1, typeof d === 'number' ? int(1, d) : bytes(2, d));
  return msg(field, bytes(1, name), msg(2, msg(1, int(1, FLOAT), msg(2, ...dims.map(dim)))));
}

function initializer(name: string, type: number, dims: number[], raw: Buffer): Field {
  return msg(5, ...dims.map((d) => int(1, d)), int(2, type), bytes(8, name), bytes(9, raw));
}

const node = (op: string, inputs: string[], outputs: string[]): Field =>
  msg(1, ...inputs.map((i) => bytes(1, i)), ...outputs.map((o) => bytes(2, o)), bytes(3, op.toLowerCase()), bytes(4, op));

/**
 * An end-to-end style detector on a 2x2 input: `images` [batch,3,2,2] is reshaped to `output0`
 * [batch,2,6] and scaled column-wise by `scale`, so each letterboxed pixel value becomes one number of
 * the two x1,y1,x2,y2,score,class rows (CHW order). Carries Ultralytics-style metadata.
 */
export function endToEndOnnx(scale: number[], metadata: Record<string, string>): Buffer {
  const shape = Buffer.alloc(24);
  [-1n, 2n, 6n].forEach((v, i) => shape.writeBigInt64LE(v, i * 8));
  const scales = Buffer.alloc(24);
  scale.forEach((v, i) => scales.writeFloatLE(v, i * 4));
  const graph = msg(
    7,
    node('Reshape', ['images', 'shape'], ['rows']),
    node('Mul', ['rows', 'scale'], ['output0']),
    bytes(2, 'end2end'),
    initializer('shape', INT64, [3], shape),
    initializer('scale', FLOAT, [6], scales),
    valueInfo(11, 'images', ['batch', 3, 2, 2]),
    valueInfo(12, 'output0', ['batch', 2, 6]),
  );
  const props = Object.entries(metadata).map(([k, v]) => msg(14, bytes(1, k), bytes(2, v)));
  return Buffer.concat([int(1, 8), msg(8, bytes(1, ''), int(2, 13)), graph, ...props]);
}
