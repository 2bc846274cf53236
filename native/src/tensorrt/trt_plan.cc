#include "trt_plan.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace detq {

std::vector<int> parseShape(const std::string& text) {
  std::vector<int> dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, 'x')) {
    if (part.empty() || part.size() > 6 || part.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument("bad shape '" + text + "' (expected NxCxHxW, e.g. 1x3x640x640)");
    dims.push_back(std::stoi(part));
  }
  if (dims.size() != 4) throw std::invalid_argument("bad shape '" + text + "' (expected NxCxHxW, e.g. 1x3x640x640)");
  return dims;
}

void writeFileAtomically(const std::string& path, const void* bytes, std::size_t size) {
  const std::string tmp = path + ".tmp-" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write '" + tmp + "'");
    out.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw std::runtime_error("failed writing '" + tmp + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "'");
  }
}

}  // namespace detq
