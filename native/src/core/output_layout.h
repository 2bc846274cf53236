// A detection model's output layout, decided from its shape and metadata with the same rules as
// packages/inference/src/output-layout.ts: a raw YOLO head [batch, 4+classes, anchors] is decoded and
// NMS'd on the GPU; an end-to-end output [batch, N, 6] (x1,y1,x2,y2,score,class in input pixels,
// boxes already selected by the graph) is filtered and mapped back on the host. Others are refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/kernels.h"

namespace detq {

enum class OutputLayout { kRaw, kEnd2End };

// -1 unknown, 0 false, 1 true: Ultralytics' `end2end` metadata flag.
enum class End2EndHint { kUnknown = -1, kNo = 0, kYes = 1 };

struct OutputShape {
  OutputLayout layout = OutputLayout::kRaw;
  int rows = 0;     // raw: 4 + classes; end2end: detections per image (N)
  int columns = 0;  // raw: anchors; end2end: 6
};

constexpr int kEnd2EndValues = 6;

// Throws std::runtime_error naming the shape when it is neither layout.
OutputShape detectOutputLayout(const std::vector<std::int64_t>& dims, End2EndHint hint);

// `end2end` in a TorchScript's config.txt (Ultralytics' JSON metadata): kUnknown when absent.
End2EndHint end2endFromConfig(const std::string& config);

// One image's [N, 6] float rows -> packed [count, 6] rows in source pixels (conf, class filter,
// max-det in score order, letterbox undone, clipped). Mirrors decodeEndToEnd in yolo-postprocess.ts.
std::vector<float> decodeEndToEnd(const float* rows, int detections, const LetterboxDesc& lb, const DetectConfig& config);

}  // namespace detq
