#include "output_layout.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <stdexcept>

namespace detq {
namespace {

std::string shapeText(const std::vector<std::int64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

float clip(float v, float hi) { return v < 0 ? 0 : v > hi ? hi : v; }

}  // namespace

OutputShape detectOutputLayout(const std::vector<std::int64_t>& dims, End2EndHint hint) {
  auto refuse = [&](const std::string& why) {
    return std::runtime_error("model output " + shapeText(dims) + ": " + why +
                              "; detq decodes YOLO heads [batch, 4+classes, anchors] and end-to-end outputs [batch, N, 6]");
  };
  if (dims.size() != 3) throw refuse("rank " + std::to_string(dims.size()) + ", expected 3");
  const std::int64_t rows = dims[1], cols = dims[2];
  const bool end2end = hint == End2EndHint::kUnknown ? (cols == kEnd2EndValues && rows != kEnd2EndValues) : hint == End2EndHint::kYes;
  if (end2end) {
    if (cols != kEnd2EndValues) throw refuse("its metadata says end2end but the last dimension is not 6");
    if (rows < 1) throw refuse("the number of detections is not fixed");
    return {OutputLayout::kEnd2End, static_cast<int>(rows), kEnd2EndValues};
  }
  if (rows < 5) throw refuse("fewer than 5 rows (4 box values + at least one class)");
  return {OutputLayout::kRaw, static_cast<int>(rows), static_cast<int>(cols)};
}

End2EndHint end2endFromConfig(const std::string& config) {
  static const std::regex flag(R"x("end2end"\s*:\s*(true|false))x", std::regex::icase);
  std::smatch m;
  if (!std::regex_search(config, m, flag)) return End2EndHint::kUnknown;
  return (m[1].str()[0] == 't' || m[1].str()[0] == 'T') ? End2EndHint::kYes : End2EndHint::kNo;
}

std::vector<float> decodeEndToEnd(const float* rows, int detections, const LetterboxDesc& lb, const DetectConfig& config) {
  std::vector<int> live;
  for (int i = 0; i < detections; ++i) {
    const float* r = rows + static_cast<std::size_t>(i) * kEnd2EndValues;
    const int cls = static_cast<int>(std::lround(r[5]));
    if (r[4] > config.conf &&
        (config.classes.empty() || std::find(config.classes.begin(), config.classes.end(), cls) != config.classes.end()))
      live.push_back(i);
  }
  // Stable: equal scores keep the model's order.
  std::stable_sort(live.begin(), live.end(), [&](int a, int b) { return rows[a * kEnd2EndValues + 4] > rows[b * kEnd2EndValues + 4]; });
  if (static_cast<int>(live.size()) > config.maxDet) live.resize(config.maxDet);
  std::vector<float> out;
  out.reserve(live.size() * kEnd2EndValues);
  const float w = static_cast<float>(lb.srcWidth), h = static_cast<float>(lb.srcHeight);
  for (int i : live) {
    const float* r = rows + static_cast<std::size_t>(i) * kEnd2EndValues;
    out.push_back(clip((r[0] - lb.left) / lb.gain, w));
    out.push_back(clip((r[1] - lb.top) / lb.gain, h));
    out.push_back(clip((r[2] - lb.left) / lb.gain, w));
    out.push_back(clip((r[3] - lb.top) / lb.gain, h));
    out.push_back(r[4]);
    out.push_back(static_cast<float>(std::lround(r[5])));
  }
  return out;
}

}  // namespace detq
