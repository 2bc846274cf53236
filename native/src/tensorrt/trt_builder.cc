#include "trt_builder.h"

#include <NvInfer.h>
#include <NvInferVersion.h>
#include <NvOnnxParser.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>

#include "../core/backend.h"
#include "../core/cuda_resources.h"
#include "../core/log.h"
#include "trt_calibrator.h"
#include "trt_logging.h"
#include "trt_plan.h"

namespace detq {
namespace {

nvinfer1::Dims4 dims(const std::string& shape) {
  const auto d = parseShape(shape);
  return nvinfer1::Dims4{d[0], d[1], d[2], d[3]};
}

bool hasLayer(const nvinfer1::INetworkDefinition& network, nvinfer1::LayerType a, nvinfer1::LayerType b) {
  for (int32_t i = 0; i < network.getNbLayers(); ++i) {
    const nvinfer1::ILayer* layer = network.getLayer(i);
    if (layer && (layer->getType() == a || layer->getType() == b)) return true;
  }
  return false;
}

bool hasHalfTensor(const nvinfer1::INetworkDefinition& network) {
  for (int32_t i = 0; i < network.getNbLayers(); ++i) {
    const nvinfer1::ILayer* layer = network.getLayer(i);
    for (int32_t j = 0; layer && j < layer->getNbOutputs(); ++j)
      if (layer->getOutput(j) && layer->getOutput(j)->getType() == nvinfer1::DataType::kHALF) return true;
  }
  return false;
}

std::vector<char> readFileIfPresent(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return in ? std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()) : std::vector<char>{};
}

struct PrecisionChoice {
  std::string precision;     // fp32 | fp16 | int8
  std::string quantization;  // none | calibrated | explicit
  std::shared_ptr<void> calibrator;  // kept alive until the build is done (TensorRT 10 calibration)
};

// Sets the reduced-precision builder flags (TensorRT 10) or checks that the strongly typed network
// already is what was asked for (TensorRT 11).
#ifndef DETQ_TRT_IMPLICIT_INT8
PrecisionChoice choosePrecision(const BuildOptions& o, nvinfer1::INetworkDefinition& network, nvinfer1::IBuilderConfig&,
                                nvinfer1::IBuilder&, const std::string&, TrtErrorRecorder&) {
  const bool qdq = hasLayer(network, nvinfer1::LayerType::kQUANTIZE, nvinfer1::LayerType::kDEQUANTIZE);
  const std::string actual = qdq ? "int8" : hasHalfTensor(network) ? "fp16" : "fp32";
  if (o.precision == "int8" && !qdq)
    throw std::invalid_argument("TensorRT 11 has no INT8 calibration: --int8 needs an ONNX with Q/DQ nodes (quantise it first, e.g. with NVIDIA ModelOpt)");
  if (o.precision == "fp16" && actual != "fp16")
    throw std::invalid_argument("TensorRT 11 builds strongly typed networks, so precision comes from the ONNX: export it in FP16 (yolo export half=True) for --fp16");
  if (o.precision != actual) log(LogLevel::kInfo, "TensorRT 11: '" + o.onnxPath + "' is " + actual + " (strongly typed), so the engine is too");
  return {actual, qdq ? "explicit" : "none", nullptr};
}
#else
PrecisionChoice choosePrecision(const BuildOptions& o, nvinfer1::INetworkDefinition& network, nvinfer1::IBuilderConfig& config,
                                nvinfer1::IBuilder& builder, const std::string& input, TrtErrorRecorder& recorder) {
  const bool qdq = hasLayer(network, nvinfer1::LayerType::kQUANTIZE, nvinfer1::LayerType::kDEQUANTIZE);
  // kFP16/kINT8 and the calibrator API are deprecated in TensorRT 10 (strongly typed networks are the
  // new way); they remain the way to get reduced precision from a plain FP32 ONNX there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  if (o.precision == "fp32" && !qdq) return {"fp32", "none", nullptr};
  config.setFlag(nvinfer1::BuilderFlag::kFP16);
  if (o.precision == "fp16" && !qdq) return {"fp16", "none", nullptr};
  config.setFlag(nvinfer1::BuilderFlag::kINT8);
  if (qdq) {
    // Explicit quantisation: the scales are in the graph, no calibration.
    if (!o.calibrationData.empty()) log(LogLevel::kWarn, "'" + o.onnxPath + "' has Q/DQ nodes: its own scales are used, the calibration images are not");
    return {"int8", "explicit", nullptr};
  }
  if (o.calibrationData.empty() && readFileIfPresent(o.calibrationCache).empty())
    throw std::invalid_argument("--int8 on a model without Q/DQ nodes needs calibration images (--calib <folder>) or a calibration cache");
  const auto opt = parseShape(o.optShape);
  std::shared_ptr<nvinfer1::IInt8Calibrator> calibrator = makeCalibrator(
      o.calibrationAlgorithm, std::make_unique<CalibrationStream>(o.calibrationData, o.calibrationCache, o.calibrationBatch, opt[2], opt[3]));
  config.setInt8Calibrator(calibrator.get());
  // Calibration runs at one shape: the opt resolution with the calibrator's batch.
  nvinfer1::IOptimizationProfile* calib = builder.createOptimizationProfile();
  const nvinfer1::Dims4 shape{o.calibrationBatch, 3, opt[2], opt[3]};
  if (!calib || !calib->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kMIN, shape) ||
      !calib->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kOPT, shape) ||
      !calib->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kMAX, shape) || !config.setCalibrationProfile(calib))
    throw std::runtime_error(recorder.takeMessage("TensorRT rejected the calibration profile"));
#pragma GCC diagnostic pop
  return {"int8", "calibrated", calibrator};
}
#endif

}  // namespace

BuildResult buildEngine(const BuildOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  DeviceGuard guard(o.device);
  if (o.precision != "fp32" && o.precision != "fp16" && o.precision != "int8")
    throw std::invalid_argument("precision must be fp32, fp16 or int8");
  if (o.profiles < 1 || o.profiles > 16) throw std::invalid_argument("--contexts must be between 1 and 16");
  TrtErrorRecorder recorder;
  auto& logger = TrtLogger::instance();

  std::unique_ptr<nvinfer1::IBuilder> builder(nvinfer1::createInferBuilder(logger));
  if (!builder) throw std::runtime_error("TensorRT: createInferBuilder failed");
  builder->setErrorRecorder(&recorder);
  // Explicit batch always (TensorRT 10+); strongly typed always in TensorRT 11, weakly typed in 10 so
  // the precision flags apply.
  std::unique_ptr<nvinfer1::INetworkDefinition> network(builder->createNetworkV2(0));
  if (!network) throw std::runtime_error(recorder.takeMessage("TensorRT: createNetworkV2 failed"));
  std::unique_ptr<nvonnxparser::IParser> parser(nvonnxparser::createParser(*network, logger));
  if (!parser) throw std::runtime_error("TensorRT: createParser failed");
  if (!parser->parseFromFile(o.onnxPath.c_str(), static_cast<int>(nvinfer1::ILogger::Severity::kWARNING))) {
    std::string msg = "TensorRT could not parse '" + o.onnxPath + "'";
    for (int i = 0; i < parser->getNbErrors(); ++i) msg += std::string(i ? "; " : ": ") + parser->getError(i)->desc();
    throw std::runtime_error(msg);
  }
  if (network->getNbInputs() != 1) throw std::runtime_error("detq engines take exactly one input tensor");
  const std::string input = network->getInput(0)->getName();

  std::unique_ptr<nvinfer1::IBuilderConfig> config(builder->createBuilderConfig());
  if (!config) throw std::runtime_error(recorder.takeMessage("TensorRT: createBuilderConfig failed"));
  config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, static_cast<std::size_t>(o.workspaceMiB) << 20);
  // N identical profiles: each execution context owns one (two contexts must never share a profile).
  for (int p = 0; p < o.profiles; ++p) {
    nvinfer1::IOptimizationProfile* profile = builder->createOptimizationProfile();  // owned by the builder
    if (!profile || !profile->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kMIN, dims(o.minShape)) ||
        !profile->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kOPT, dims(o.optShape)) ||
        !profile->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kMAX, dims(o.maxShape)))
      throw std::runtime_error(recorder.takeMessage("invalid optimisation profile " + o.minShape + " / " + o.optShape + " / " + o.maxShape +
                                                    " (need min <= opt <= max, and a static model accepts only its own shape)"));
    if (config->addOptimizationProfile(profile) < 0) throw std::runtime_error(recorder.takeMessage("TensorRT rejected the optimisation profile"));
  }

  const PrecisionChoice choice = choosePrecision(o, *network, *config, *builder, input, recorder);
  const std::string& precision = choice.precision;

  // The timing cache keeps tactic timings across builds on this GPU and TensorRT version.
  std::unique_ptr<nvinfer1::ITimingCache> timing;
  if (!o.timingCache.empty()) {
    const std::vector<char> bytes = readFileIfPresent(o.timingCache);
    timing.reset(config->createTimingCache(bytes.data(), bytes.size()));
    if (!timing) throw std::runtime_error(recorder.takeMessage("TensorRT could not read the timing cache '" + o.timingCache + "' (delete it)"));
    if (!config->setTimingCache(*timing, false)) throw std::runtime_error(recorder.takeMessage("TensorRT: setTimingCache failed"));
  }

  log(LogLevel::kInfo, "TensorRT: building " + precision + " engine for '" + o.onnxPath + "' (" + o.minShape + " .. " + o.maxShape + ", " +
                           std::to_string(o.profiles) + " profiles)");
  std::unique_ptr<nvinfer1::IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
  if (!plan || plan->size() == 0) throw std::runtime_error(recorder.takeMessage("TensorRT engine build failed"));

  if (timing) {
    const nvinfer1::ITimingCache* used = config->getTimingCache();
    std::unique_ptr<nvinfer1::IHostMemory> serialised(used ? used->serialize() : nullptr);
    if (serialised) writeFileAtomically(o.timingCache, serialised->data(), serialised->size());
    else log(LogLevel::kWarn, recorder.takeMessage("TensorRT could not serialise the timing cache"));
  }

  BuildResult result;
  const auto* bytes = static_cast<const char*>(plan->data());
  result.plan.assign(bytes, bytes + plan->size());
  result.gpu = deviceName(o.device);
  result.computeCapability = computeCapabilityOf(o.device);
  result.tensorrt = tensorRtVersion();
  result.precision = precision;
  result.quantization = choice.quantization;
  result.input = input;
  result.profiles = o.profiles;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace detq
