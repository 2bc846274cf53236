#include "trt_builder.h"

#include <NvInfer.h>
#include <NvOnnxParser.h>

#include <chrono>
#include <memory>
#include <stdexcept>

#include "../core/backend.h"
#include "../core/cuda_resources.h"
#include "../core/log.h"
#include "trt_calibrator.h"
#include "trt_logging.h"

namespace detq {
namespace {

nvinfer1::Dims4 dims(const std::string& shape) {
  const auto d = parseShape(shape);
  return nvinfer1::Dims4{d[0], d[1], d[2], d[3]};
}

}  // namespace

BuildResult buildEngine(const BuildOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  DeviceGuard guard(o.device);
  if (o.precision != "fp32" && o.precision != "fp16" && o.precision != "int8")
    throw std::invalid_argument("precision must be fp32, fp16 or int8");
  TrtErrorRecorder recorder;
  auto& logger = TrtLogger::instance();

  std::unique_ptr<nvinfer1::IBuilder> builder(nvinfer1::createInferBuilder(logger));
  if (!builder) throw std::runtime_error("TensorRT: createInferBuilder failed");
  builder->setErrorRecorder(&recorder);
  // TensorRT 10 networks are always explicit-batch: no creation flags needed.
  std::unique_ptr<nvinfer1::INetworkDefinition> network(builder->createNetworkV2(0));
  std::unique_ptr<nvonnxparser::IParser> parser(nvonnxparser::createParser(*network, logger));
  if (!parser->parseFromFile(o.onnxPath.c_str(), static_cast<int>(nvinfer1::ILogger::Severity::kWARNING))) {
    std::string msg = "TensorRT could not parse '" + o.onnxPath + "'";
    for (int i = 0; i < parser->getNbErrors(); ++i) msg += std::string(i ? "; " : ": ") + parser->getError(i)->desc();
    throw std::runtime_error(msg);
  }
  if (network->getNbInputs() != 1) throw std::runtime_error("detq engines take exactly one input tensor");
  const std::string input = network->getInput(0)->getName();

  std::unique_ptr<nvinfer1::IBuilderConfig> config(builder->createBuilderConfig());
  config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, static_cast<std::size_t>(o.workspaceMiB) << 20);
  nvinfer1::IOptimizationProfile* profile = builder->createOptimizationProfile();  // owned by the builder
  if (!profile->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kMIN, dims(o.minShape)) ||
      !profile->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kOPT, dims(o.optShape)) ||
      !profile->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kMAX, dims(o.maxShape)))
    throw std::runtime_error(recorder.takeMessage("invalid optimisation profile " + o.minShape + " / " + o.optShape + " / " + o.maxShape +
                                                  " (need min <= opt <= max, and a static model accepts only its own shape)"));
  if (config->addOptimizationProfile(profile) < 0) throw std::runtime_error(recorder.takeMessage("TensorRT rejected the optimisation profile"));

  // kFP16/kINT8 builder flags and the calibrator API are deprecated in TensorRT 10 (strongly typed
  // networks are the new way); they remain the way to get reduced precision from a plain FP32 ONNX.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  std::unique_ptr<EntropyCalibrator> calibrator;
  if (o.precision == "fp16" || o.precision == "int8") config->setFlag(nvinfer1::BuilderFlag::kFP16);
  if (o.precision == "int8") {
    if (o.calibrationData.empty() && o.calibrationCache.empty())
      throw std::invalid_argument("--int8 needs calibration images (--calib <folder>) or a calibration cache");
    const auto opt = parseShape(o.optShape);
    calibrator = std::make_unique<EntropyCalibrator>(o.calibrationData, o.calibrationCache, o.calibrationBatch, opt[2], opt[3]);
    config->setFlag(nvinfer1::BuilderFlag::kINT8);
    config->setInt8Calibrator(calibrator.get());
    // Calibration runs at one shape: the opt resolution with the calibrator's batch.
    nvinfer1::IOptimizationProfile* calib = builder->createOptimizationProfile();
    const nvinfer1::Dims4 shape{o.calibrationBatch, 3, opt[2], opt[3]};
    calib->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kMIN, shape);
    calib->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kOPT, shape);
    calib->setDimensions(input.c_str(), nvinfer1::OptProfileSelector::kMAX, shape);
    config->setCalibrationProfile(calib);
  }
#pragma GCC diagnostic pop

  log(LogLevel::kInfo, "TensorRT: building " + o.precision + " engine for '" + o.onnxPath + "' (" + o.minShape + " .. " + o.maxShape + ")");
  std::unique_ptr<nvinfer1::IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
  if (!plan || plan->size() == 0) throw std::runtime_error(recorder.takeMessage("TensorRT engine build failed"));

  BuildResult result;
  result.path = o.outputPath;
  result.key = PlanKey{o.modelSha256, deviceName(o.device), computeCapabilityOf(o.device), tensorRtVersion(),
                       o.precision, input, o.minShape, o.optShape, o.maxShape};
  writePlanFile(o.outputPath, result.key, plan->data(), plan->size());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace detq
