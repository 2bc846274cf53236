// The addon's per-environment data.
#pragma once

#include <napi.h>

namespace detq {

// Holds the constructors so ModelWrap can create instances of them.
struct AddonData {
  Napi::FunctionReference model;
  Napi::FunctionReference context;
};

}  // namespace detq
