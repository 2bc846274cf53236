#include "trt_plan.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace detq {
namespace {

constexpr char kMagic[8] = {'D', 'E', 'T', 'Q', 'T', 'R', 'T', '1'};

std::map<std::string, std::string> fields(const PlanKey& k) {
  return {{"modelSha256", k.modelSha256}, {"gpu", k.gpu}, {"computeCapability", k.computeCapability},
          {"tensorrt", k.tensorrt}, {"precision", k.precision}, {"input", k.input},
          {"min", k.minShape}, {"opt", k.optShape}, {"max", k.maxShape}};
}

}  // namespace

std::vector<int> parseShape(const std::string& text) {
  std::vector<int> dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, 'x')) {
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument("bad shape '" + text + "' (expected NxCxHxW, e.g. 1x3x640x640)");
    dims.push_back(std::stoi(part));
  }
  if (dims.size() != 4) throw std::invalid_argument("bad shape '" + text + "' (expected NxCxHxW, e.g. 1x3x640x640)");
  return dims;
}

void writePlanFile(const std::string& path, const PlanKey& key, const void* plan, std::size_t size) {
  std::string header;
  for (const auto& [k, v] : fields(key)) header += k + "=" + v + "\n";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write engine file '" + path + "'");
  const auto len = static_cast<std::uint32_t>(header.size());
  out.write(kMagic, sizeof kMagic);
  out.write(reinterpret_cast<const char*>(&len), sizeof len);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(plan), static_cast<std::streamsize>(size));
  if (!out) throw std::runtime_error("failed writing engine file '" + path + "'");
}

PlanFile readPlanFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open engine file '" + path + "'");
  char magic[sizeof kMagic];
  std::uint32_t len = 0;
  in.read(magic, sizeof magic);
  in.read(reinterpret_cast<char*>(&len), sizeof len);
  if (!in || std::memcmp(magic, kMagic, sizeof kMagic) != 0 || len > (1u << 20))
    throw std::runtime_error("'" + path + "' is not a detq TensorRT engine file: build one with `detq build-engine model.onnx`");
  std::string header(len, '\0');
  in.read(header.data(), len);
  std::map<std::string, std::string> kv;
  std::stringstream ss(header);
  std::string line;
  while (std::getline(ss, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  PlanFile file;
  file.key = {kv["modelSha256"], kv["gpu"], kv["computeCapability"], kv["tensorrt"], kv["precision"],
              kv["input"], kv["min"], kv["opt"], kv["max"]};
  file.plan.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (file.plan.empty()) throw std::runtime_error("engine file '" + path + "' holds no plan");
  return file;
}

void checkPlanCompatible(const PlanKey& key, const std::string& path, const std::string& gpu,
                         const std::string& computeCapability, const std::string& tensorrt) {
  if (key.gpu == gpu && key.computeCapability == computeCapability && key.tensorrt == tensorrt) return;
  throw std::runtime_error("engine file '" + path + "' was built for " + key.gpu + " (sm " + key.computeCapability +
                           ") with TensorRT " + key.tensorrt + ", but this is " + gpu + " (sm " + computeCapability +
                           ") with TensorRT " + tensorrt +
                           ". TensorRT plans are specific to a GPU model and TensorRT version: rebuild it here with "
                           "`detq build-engine <model.onnx>`.");
}

}  // namespace detq
