// Each ONNX Runtime session of the engine lives on its own worker thread: the main event loop (progress
// bars, BullMQ lock renewal, HTTP) never waits on a session's native calls. Plain JS so it loads without
// a TypeScript loader. The model comes as bytes, edited to take letterboxed uint8 HWC frames
// (onnx-graph-edits.ts), with its session options (cpuSessionOptions in onnxruntime-engine.ts).
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

let session;

try {
  session = await ort.InferenceSession.create(workerData.model, workerData.options);
  workerData.model = undefined; // the session holds its own copy
  const output = session.outputMetadata[0];
  parentPort.postMessage({
    type: 'ready',
    outputShape: output?.isTensor ? output.shape : [],
    version: ort.env.versions?.node ?? 'unknown',
  });
} catch (err) {
  parentPort.postMessage({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
}

const running = new Set();

async function run(msg) {
  try {
    const feeds = { [session.inputNames[0]]: new ort.Tensor('uint8', msg.data, msg.dims) };
    // Only the output asked for leaves ONNX Runtime (the best-class one is a 14th of the full head).
    const name = msg.output ?? session.outputNames[0];
    const out = (await session.run(feeds, [name]))[name];
    const data = out.data;
    parentPort.postMessage({ id: msg.id, data, dims: out.dims }, [data.buffer]);
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: err instanceof Error ? err.message : String(err) });
  }
}

parentPort.on('message', async (msg) => {
  // Asked to stop: the runs under way finish and answer first, then the session is released and the
  // engine told so; terminating the thread inside session.run() would abort the whole process.
  if (msg.close) {
    await Promise.all(running);
    await session?.release();
    parentPort.postMessage({ closed: true });
    return;
  }
  const p = run(msg).finally(() => running.delete(p));
  running.add(p);
});
