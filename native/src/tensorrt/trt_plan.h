// detq's engine file: a small text header naming what the plan is bound to, then TensorRT's plan.
// A plan only runs on the GPU model and TensorRT version it was built with, so loading checks both
// before TensorRT sees the bytes and refuses a mismatch with a message that says how to fix it.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace detq {

struct PlanKey {
  std::string modelSha256;
  std::string gpu;
  std::string computeCapability;  // e.g. "9.0"
  std::string tensorrt;           // e.g. "10.16.0"
  std::string precision;          // fp32 | fp16 | int8
  std::string input;              // input tensor name
  std::string minShape, optShape, maxShape;  // NxCxHxW
};

struct PlanFile {
  PlanKey key;
  std::vector<char> plan;
};

void writePlanFile(const std::string& path, const PlanKey& key, const void* plan, std::size_t size);
PlanFile readPlanFile(const std::string& path);
// Throws unless the plan was built for this GPU (name and compute capability) and TensorRT version.
void checkPlanCompatible(const PlanKey& key, const std::string& path, const std::string& gpu,
                         const std::string& computeCapability, const std::string& tensorrt);

// "9.0" for an H100: part of every plan's key.
std::string computeCapabilityOf(int device);

// "1x3x640x640" -> {1,3,640,640}; throws on anything else.
std::vector<int> parseShape(const std::string& text);

}  // namespace detq
