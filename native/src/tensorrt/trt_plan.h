// What a TensorRT plan is bound to. The detq engine file (header with a checksum, then the plan) is
// written, read and checked by @detq/inference (packages/inference/src/engine-file.ts): the addon
// builds plans and deserialises plan bytes it is handed, and reports the facts a plan's key needs.
#pragma once

#include <string>
#include <vector>

namespace detq {

// "9.0" for an H100: part of every plan's key.
std::string computeCapabilityOf(int device);

// "1x3x640x640" -> {1,3,640,640}; throws on anything else.
std::vector<int> parseShape(const std::string& text);

// Writes `bytes` to `path` through a temporary file renamed into place, so a reader never sees half a file.
void writeFileAtomically(const std::string& path, const void* bytes, std::size_t size);

}  // namespace detq
