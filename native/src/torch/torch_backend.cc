// LibTorch backend: a TorchScript traced on CUDA (yolo export format=torchscript device=0), loaded once
// per device and shared; each execution context runs it on its own CUDA stream. FP16 converts the
// module (.half()) and feeds it half input straight from the letterbox kernel. With CUDA graphs, each
// context replays one captured forward per padded batch size instead of the interpreter launching the
// network's kernels one by one (host time that, at batch 32, was most of a batch's).
#include <ATen/Context.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/script.h>

#include <algorithm>
#include <map>
#include <memory>
#include <regex>
#include <stdexcept>

#include "../core/backend.h"
#include "../core/cuda_check.h"
#include "../core/log.h"

namespace detq {
namespace {

// The network input size Ultralytics records in the export's config.txt ("imgsz": [h, w]).
std::pair<int, int> exportedImgsz(const std::string& config) {
  std::smatch m;
  static const std::regex imgsz(R"x("imgsz"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*\])x");
  if (std::regex_search(config, m, imgsz)) return {std::stoi(m[1]), std::stoi(m[2])};
  return {640, 640};
}

class TorchModel;

class TorchInstance : public InstanceState {
 public:
  // Built on its execution context's thread, which is where the warm-up has to run.
  explicit TorchInstance(TorchModel& model);
  RawOutput run(const void* input, int batch, cudaStream_t stream) override;

 private:
  // One padded batch size's forward on this context's stream. Its first run is eager (it sets up what
  // the stream needs, such as cuBLAS's workspace, outside any capture); the second is captured, and
  // every later one replays the graph.
  struct BatchGraph {
    bool ranEager = false;
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    at::Tensor output;  // the graph's output; each replay rewrites it
  };
  at::Tensor forward(const at::Tensor& input, int batch, cudaStream_t stream);
  // Captures `input`'s forward into `g`. When the network cannot be captured (a host sync inside it, say)
  // this context stops capturing and runs eagerly from then on, with a warning.
  void capture(BatchGraph& g, const at::Tensor& input, int batch, cudaStream_t stream);
  // After a failed capture: ends it on the stream and in the caching allocator, which PyTorch's
  // capture_end() skips when the capture was invalidated (the allocator would otherwise keep treating a
  // capture as under way: no freeing of its cache on out-of-memory, for every context on the device).
  void abandonCapture(cudaStream_t stream);

  TorchModel& model_;  // the pipeline holding this instance also holds the model
  at::Tensor output_;  // kept alive until the next run: post-processing reads it on the same stream
  bool captureFailed_ = false;
  // Graphs read their input at the address they were captured with: they are dropped when it moves.
  const void* graphInput_ = nullptr;
  std::map<int, BatchGraph> graphs_;
  // One memory pool for all of this context's graphs. A replay may overwrite another graph's output,
  // but only after that output's readers (post-processing, the copy of end-to-end rows), queued before
  // it on this context's one stream, have run.
  decltype(at::cuda::graph_pool_handle()) pool_ = at::cuda::graph_pool_handle();
};

class TorchModel : public ModelState {
 public:
  explicit TorchModel(const LoadOptions& o) {
    c10::cuda::CUDAGuard deviceGuard(static_cast<c10::DeviceIndex>(o.device));
    torch::jit::ExtraFilesMap extra{{"config.txt", ""}};
    try {
      module_ = torch::jit::load(o.path, torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(o.device)), extra);
    } catch (const c10::Error& e) {
      throw std::runtime_error("cannot load TorchScript '" + o.path + "': " + e.what_without_backtrace());
    }
    module_.eval();
    if (o.half) module_.to(torch::kHalf);
    if (o.channelsLast)
      for (at::Tensor p : module_.parameters())
        if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    // Fixed input shapes per batch size: let cuDNN pick its fastest convolution algorithms.
    at::globalContext().setBenchmarkCuDNN(true);

    const auto [h, w] = exportedImgsz(extra["config.txt"]);
    info_.backend = "torch";
    info_.runtimeVersion = std::string("libtorch ") + DETQ_TORCH_VERSION;
    info_.device = deviceName(o.device);
    info_.deviceIndex = o.device;
    info_.inputWidth = o.inputWidth > 0 ? o.inputWidth : w;
    info_.inputHeight = o.inputHeight > 0 ? o.inputHeight : h;
    info_.maxBatch = o.maxBatch;
    setBatchSizes(info_, o.batchSizes, 1);
    info_.precision = o.half ? Precision::kFp16 : Precision::kFp32;
    info_.inputType = o.half ? DType::kFloat16 : DType::kFloat32;
    info_.channelsLast = o.channelsLast;
    info_.cudaGraphs = o.cudaGraphs;
    half_ = o.half;

    // The output shape (and Ultralytics' end2end flag) tells the layout: raw head or end-to-end boxes.
    auto stream = c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(o.device));
    c10::cuda::CUDAStreamGuard streamGuard(stream);
    c10::InferenceMode inference;
    const at::Tensor out = forward(probe(1));
    stream.synchronize();
    const OutputShape shape = detectOutputLayout(out.sizes().vec(), end2endFromConfig(extra["config.txt"]));
    info_.outputLayout = shape.layout;
    info_.outputRows = shape.rows;
    info_.anchors = shape.columns;
  }

  std::unique_ptr<InstanceState> createInstance(int /*profile: torch has none to share*/) override { return std::make_unique<TorchInstance>(*this); }

  // A grey batch in the input's dtype and layout.
  at::Tensor probe(int batch) const {
    return torch::full({batch, 3, info_.inputHeight, info_.inputWidth}, 114.0 / 255.0,
                       torch::TensorOptions().dtype(half_ ? torch::kHalf : torch::kFloat).device(torch::kCUDA, static_cast<c10::DeviceIndex>(info_.deviceIndex)))
        .contiguous(info_.channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  }

  // Runs every batch size the pipeline uses (ModelInfo::batchSizes) three times on the calling
  // thread. PyTorch keeps cuDNN's autotuning results per thread, and the TorchScript profiling executor
  // optimises a shape's graph after profiling it: both must happen before labelling, not during it.
  void warmUp() {
    auto stream = c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(info_.deviceIndex));
    c10::cuda::CUDAStreamGuard streamGuard(stream);
    c10::InferenceMode inference;
    for (int b : info_.batchSizes) {
      const at::Tensor batch = probe(b);
      for (int i = 0; i < 3; ++i) forward(batch);
    }
    stream.synchronize();
  }

  // Ultralytics exports return the head output, sometimes inside a tuple.
  at::Tensor forward(const at::Tensor& input) {
    torch::jit::IValue out = module_.forward({input});
    at::Tensor t = out.isTuple() ? out.toTuple()->elements()[0].toTensor() : out.toTensor();
    return t.contiguous();
  }
  bool half() const { return half_; }

 private:
  torch::jit::Module module_;  // forward() is reentrant, so contexts share one module
  bool half_ = false;
};

TorchInstance::TorchInstance(TorchModel& model) : model_(model) {
  try {
    model_.warmUp();
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string("torch warm-up failed: ") + e.what_without_backtrace());
  }
}

void TorchInstance::abandonCapture(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(stream, &partial);
    if (partial) cudaGraphDestroy(partial);
  }
  cudaGetLastError();  // capture errors are not sticky: clear them for the eager runs that follow
  const auto device = static_cast<c10::DeviceIndex>(model_.info().deviceIndex);
  try {
    c10::cuda::CUDACachingAllocator::endAllocateToPool(device, pool_);
  } catch (const c10::Error&) {
    return;  // capture_end() got past this itself, and the graph gives its pool reference back
  }
  c10::cuda::CUDACachingAllocator::releasePool(device, pool_);
}

void TorchInstance::capture(BatchGraph& g, const at::Tensor& input, int batch, cudaStream_t stream) {
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  at::Tensor output;
  bool begun = false;
  try {
    // Thread-local capture: the other contexts' threads keep allocating and synchronising meanwhile.
    graph->capture_begin(pool_, cudaStreamCaptureModeThreadLocal);
    begun = true;
    output = model_.forward(input);
    graph->capture_end();
  } catch (const std::exception& e) {
    const auto* torchError = dynamic_cast<const c10::Error*>(&e);
    const std::string why = torchError ? torchError->what_without_backtrace() : e.what();
    if (begun) abandonCapture(stream);
    captureFailed_ = true;
    // The graphs captured before go too (their replays finish first): this context runs eagerly now.
    cudaStreamSynchronize(stream);
    graphs_.clear();
    log(LogLevel::kWarn, "torch: this context runs without CUDA graphs from batch " + std::to_string(batch) +
                             " on: the network could not be captured (" + why + "); --no-cuda-graphs avoids the attempt");
    return;
  }
  g.graph = std::move(graph);
  g.output = std::move(output);
}

at::Tensor TorchInstance::forward(const at::Tensor& input, int batch, cudaStream_t stream) {
  if (!model_.info().cudaGraphs || captureFailed_) return model_.forward(input);
  if (input.data_ptr() != graphInput_) {
    if (!graphs_.empty()) {
      // A replay may still be running, and output_ may be one of the pool's blocks: both go first, then
      // the graphs, and the next captures take a pool of their own.
      DETQ_CUDA_CHECK(cudaStreamSynchronize(stream));
      output_ = at::Tensor();
      graphs_.clear();
      pool_ = at::cuda::graph_pool_handle();
    }
    graphInput_ = input.data_ptr();
  }
  BatchGraph& g = graphs_[batch];
  if (!g.graph && g.ranEager) {
    capture(g, input, batch, stream);
    if (captureFailed_) return model_.forward(input);
  }
  if (!g.graph) {
    g.ranEager = true;
    return model_.forward(input);
  }
  g.graph->replay();
  return g.output;
}

RawOutput TorchInstance::run(const void* input, int batch, cudaStream_t stream) {
  const ModelInfo& info = model_.info();
  const auto device = static_cast<c10::DeviceIndex>(info.deviceIndex);
  try {
    c10::cuda::CUDAStreamGuard streamGuard(c10::cuda::getStreamFromExternal(stream, device));
    c10::InferenceMode inference;
    auto options = torch::TensorOptions().dtype(model_.half() ? torch::kHalf : torch::kFloat).device(torch::kCUDA, device);
    const int64_t h = info.inputHeight, w = info.inputWidth;
    // The letterbox kernel wrote NCHW or, for channels-last, NHWC memory: say which through the strides.
    const std::vector<int64_t> strides = info.channelsLast ? std::vector<int64_t>{3 * h * w, 1, 3 * w, 3} : std::vector<int64_t>{3 * h * w, h * w, w, 1};
    at::Tensor in = torch::from_blob(const_cast<void*>(input), {batch, 3, h, w}, strides, options);
    output_ = forward(in, batch, stream);
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string("torch inference failed: ") + e.what_without_backtrace());
  }
  const DType type = output_.scalar_type() == torch::kHalf ? DType::kFloat16 : DType::kFloat32;
  if (output_.scalar_type() != torch::kHalf && output_.scalar_type() != torch::kFloat)
    throw std::runtime_error("unexpected TorchScript output dtype");
  return RawOutput{output_.data_ptr(), type, info.outputRows, info.anchors};
}

}  // namespace

std::shared_ptr<ModelState> loadTorchModel(const LoadOptions& options) {
  try {
    return std::make_shared<TorchModel>(options);
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string("torch backend: ") + e.what_without_backtrace());
  }
}

}  // namespace detq
