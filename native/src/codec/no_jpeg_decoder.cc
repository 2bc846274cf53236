// The JPEG decoder of a build without nvJPEG (nvjpeg.h not found): it cannot be made, so encoded frames
// come back as decode failures and JS decodes them (JS sends none: buildInfo.nvjpeg is null).
#include <stdexcept>

#include "jpeg_decoder.h"

namespace detq {

struct JpegDecoder::Handles {};

JpegDecoder::JpegDecoder(int) { throw std::runtime_error("this build of the detq addon has no nvJPEG (nvjpeg.h was not found at build time)"); }
JpegDecoder::~JpegDecoder() = default;
std::string JpegDecoder::refusal(const JpegInput&) { return "this build of the detq addon has no nvJPEG"; }
std::string JpegDecoder::decode(const std::vector<JpegInput>&, int, cudaStream_t) { return "this build of the detq addon has no nvJPEG"; }
std::string nvjpegVersion() { return ""; }

}  // namespace detq
