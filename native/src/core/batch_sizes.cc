// The padded batch sizes a model runs at. The policy (which sizes) is the caller's
// (packages/inference/src/batch-padding.ts); here they are checked against what the model accepts
// and looked up per batch.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "backend.h"

namespace detq {

void setBatchSizes(ModelInfo& info, const std::vector<int>& requested, int minBatch) {
  std::vector<int> sizes = requested.empty() ? std::vector<int>{info.maxBatch} : requested;
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  if (sizes.front() < minBatch || sizes.back() > info.maxBatch)
    throw std::invalid_argument("batch sizes " + std::to_string(sizes.front()) + ".." + std::to_string(sizes.back()) +
                                " are outside the model's batch range " + std::to_string(minBatch) + ".." + std::to_string(info.maxBatch));
  // Batches up to maxBatch must fit one of the sizes.
  if (sizes.back() != info.maxBatch) sizes.push_back(info.maxBatch);
  info.batchSizes = std::move(sizes);
}

int paddedBatch(const ModelInfo& info, int batch) {
  for (int size : info.batchSizes)
    if (size >= batch) return size;
  throw std::invalid_argument("batch " + std::to_string(batch) + " exceeds the model's largest batch " + std::to_string(info.maxBatch));
}

}  // namespace detq
