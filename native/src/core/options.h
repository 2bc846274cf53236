// Parsing of the option objects and frame lists that JS passes to the addon. Runs on the JS thread;
// the parsed values are plain C++ the context thread can use.
#pragma once

#include <napi.h>

#include <cstdint>
#include <vector>

#include "../kernels/kernels.h"
#include "backend.h"

namespace detq {

// A frame's bytes are read on the context thread; `refs` keep the JS arrays alive until the job settles.
struct HostFrame {
  const std::uint8_t* data;  // uint8 RGB HWC as stored (orientation not applied), or the JPEG file when `jpeg`
  std::size_t bytes;
  bool jpeg = false;
  LetterboxDesc desc;  // srcOffset filled in at upload time
};

struct ParsedFrames {
  std::vector<HostFrame> frames;
  std::vector<Napi::Reference<Napi::Value>> refs;
};

// Letterbox geometry of one frame. Frames name the source size width/height, bare letterboxes
// srcWidth/srcHeight, hence the keys.
LetterboxDesc parseLetterboxDesc(const Napi::Object& f, const char* widthKey, const char* heightKey, const char* where);
ParsedFrames parseFrames(const Napi::Value& value);
DetectConfig parseDetectConfig(const Napi::Value& value);
LoadOptions parseLoadOptions(const Napi::Object& obj);

}  // namespace detq
