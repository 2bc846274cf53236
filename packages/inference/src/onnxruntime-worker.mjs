// ONNX Runtime's Node binding runs session.run() synchronously on the calling JS thread, so the engine
// owns this worker thread and runs the session here: the main event loop (progress bars, BullMQ lock
// renewal, HTTP) never blocks on inference. Plain JS so it loads without a TypeScript loader. The model
// comes as bytes, edited to take letterboxed uint8 HWC frames (onnx-graph-edits.ts).
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

const { model, threads } = workerData;
let session;

try {
  session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Spinning intra-op threads would burn the cores that image decoding needs between runs.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  parentPort.postMessage({
    type: 'ready',
    version: ort.env.versions?.node ?? 'unknown',
  });
} catch (err) {
  parentPort.postMessage({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
}

parentPort.on('message', async (msg) => {
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
});
