// `detq build-engine`: ONNX -> TensorRT plan with one identical optimisation profile per execution
// context (dynamic batch and resolution), a workspace limit and a timing cache. TensorRT 10 keeps
// the builder precision flags (FP16, INT8 by MinMax or entropy calibration, or explicit Q/DQ);
// TensorRT 11 builds strongly typed networks, so precision comes from the ONNX itself.
// The plan comes back as bytes: @detq/inference writes the engine file (header, checksum, rename).
#pragma once

#include <string>
#include <vector>

namespace detq {

struct BuildOptions {
  std::string onnxPath;
  std::string precision = "fp32";  // fp32 | fp16 | int8
  int workspaceMiB = 4096;
  std::string minShape = "1x3x640x640";
  std::string optShape = "16x3x640x640";
  std::string maxShape = "32x3x640x640";
  int profiles = 2;  // one per execution context
  int device = 0;
  // Read when present and rewritten after the build; empty: no timing cache.
  std::string timingCache;
  // INT8 without Q/DQ nodes (TensorRT 10): float32 NCHW calibration images at the opt resolution,
  // the raw calibration cache (keyed by the TypeScript side), the batch and the algorithm.
  std::string calibrationData;
  std::string calibrationCache;
  int calibrationBatch = 8;
  std::string calibrationAlgorithm = "minmax";
};

struct BuildResult {
  std::vector<char> plan;
  std::string gpu;
  std::string computeCapability;
  std::string tensorrt;   // major.minor.patch.build of the library that built it
  std::string precision;  // what the plan runs at (TensorRT 11: what the ONNX says)
  std::string quantization;  // none | calibrated | explicit (Q/DQ)
  std::string input;
  int profiles = 0;
  double seconds = 0;
};

BuildResult buildEngine(const BuildOptions& options);

}  // namespace detq
