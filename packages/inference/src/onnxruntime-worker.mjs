// ONNX Runtime's Node binding runs session.run() synchronously on the calling JS thread, so the engine
// owns this worker thread and runs the session here: the main event loop (progress bars, BullMQ lock
// renewal, HTTP) never blocks on inference. Plain JS so it loads without a TypeScript loader.
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

const { modelPath, threads } = workerData;
let session;

try {
  session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Spinning intra-op threads would burn the cores that image decoding needs between runs.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const input = session.inputMetadata[0];
  const output = session.outputMetadata[0];
  parentPort.postMessage({
    type: 'ready',
    inputName: session.inputNames[0],
    outputName: session.outputNames[0],
    inputShape: input?.isTensor ? input.shape : [],
    inputType: input?.isTensor ? input.type : 'unknown',
    outputShape: output?.isTensor ? output.shape : [],
    version: ort.env.versions?.node ?? 'unknown',
  });
} catch (err) {
  parentPort.postMessage({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
}

parentPort.on('message', async (msg) => {
  try {
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', msg.data, msg.dims) };
    const result = await session.run(feeds);
    const out = result[session.outputNames[0]];
    const data = out.data;
    parentPort.postMessage({ id: msg.id, data, dims: out.dims }, [data.buffer]);
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: err instanceof Error ? err.message : String(err) });
  }
});
