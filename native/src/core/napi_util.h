// Throw helpers and small conversions for the Node-API surface. The addon is compiled with C++
// exceptions (NODE_ADDON_API_CPP_EXCEPTIONS_ALL), so a std::exception thrown in a binding becomes a JS
// Error with its message.
#pragma once

#include <napi.h>

#include <string>

#define DETQ_THROW_TYPE_ERROR(env, message) throw Napi::TypeError::New((env), (message))

namespace detq {

inline Napi::Value requireProperty(const Napi::Object& obj, const char* key, const char* where) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) DETQ_THROW_TYPE_ERROR(obj.Env(), std::string(where) + ": '" + key + "' is required");
  return v;
}

inline double requireNumber(const Napi::Object& obj, const char* key, const char* where) {
  Napi::Value v = requireProperty(obj, key, where);
  if (!v.IsNumber()) DETQ_THROW_TYPE_ERROR(obj.Env(), std::string(where) + ": '" + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline double optionalNumber(const Napi::Object& obj, const char* key, double fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) DETQ_THROW_TYPE_ERROR(obj.Env(), std::string("'") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline bool optionalBool(const Napi::Object& obj, const char* key, bool fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) DETQ_THROW_TYPE_ERROR(obj.Env(), std::string("'") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline std::string requireString(const Napi::Object& obj, const char* key, const char* where) {
  Napi::Value v = requireProperty(obj, key, where);
  if (!v.IsString()) DETQ_THROW_TYPE_ERROR(obj.Env(), std::string(where) + ": '" + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline Napi::Object requireObject(const Napi::CallbackInfo& info, std::size_t index, const char* where) {
  if (info.Length() <= index || !info[index].IsObject())
    DETQ_THROW_TYPE_ERROR(info.Env(), std::string(where) + ": argument " + std::to_string(index + 1) + " must be an object");
  return info[index].As<Napi::Object>();
}

}  // namespace detq
