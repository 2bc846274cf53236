#include "options.h"

#include <string>

#include "napi_util.h"

namespace detq {

LetterboxDesc parseLetterboxDesc(const Napi::Object& f, const char* widthKey, const char* heightKey, const char* where) {
  LetterboxDesc d{};
  d.srcWidth = static_cast<int32_t>(requireNumber(f, widthKey, where));
  d.srcHeight = static_cast<int32_t>(requireNumber(f, heightKey, where));
  d.resizedWidth = static_cast<int32_t>(requireNumber(f, "resizedWidth", where));
  d.resizedHeight = static_cast<int32_t>(requireNumber(f, "resizedHeight", where));
  d.left = static_cast<int32_t>(requireNumber(f, "left", where));
  d.top = static_cast<int32_t>(requireNumber(f, "top", where));
  d.gain = static_cast<float>(requireNumber(f, "gain", where));
  d.orientation = static_cast<int32_t>(optionalNumber(f, "orientation", 1));
  if (d.orientation < 1 || d.orientation > 8) DETQ_THROW_TYPE_ERROR(f.Env(), std::string(where) + ": 'orientation' must be 1..8");
  return d;
}

ParsedFrames parseFrames(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsArray()) DETQ_THROW_TYPE_ERROR(env, "frames must be an array");
  auto arr = value.As<Napi::Array>();
  ParsedFrames out;
  out.frames.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) DETQ_THROW_TYPE_ERROR(env, "frame " + std::to_string(i) + " must be an object");
    auto f = item.As<Napi::Object>();
    const std::string where = "frame " + std::to_string(i);
    // Either decoded pixels or a JPEG file (decoded on the device into the same layout).
    HostFrame hf{};
    hf.jpeg = f.Has("jpeg");
    Napi::Value data = requireProperty(f, hf.jpeg ? "jpeg" : "pixels", "frame");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      DETQ_THROW_TYPE_ERROR(env, where + (hf.jpeg ? ": jpeg" : ": pixels") + " must be a Uint8Array");
    auto bytes = data.As<Napi::Uint8Array>();
    hf.desc = parseLetterboxDesc(f, "width", "height", "frame");
    if (hf.desc.srcWidth <= 0 || hf.desc.srcHeight <= 0) DETQ_THROW_TYPE_ERROR(env, where + ": width and height must be positive");
    hf.data = bytes.Data();
    hf.bytes = bytes.ByteLength();
    if (hf.jpeg) {
      if (hf.bytes < 4) DETQ_THROW_TYPE_ERROR(env, where + ": jpeg is empty");
    } else if (hf.bytes != static_cast<std::size_t>(hf.desc.srcWidth) * hf.desc.srcHeight * 3) {
      DETQ_THROW_TYPE_ERROR(env, where + ": pixels must hold width*height*3 bytes (uint8 RGB HWC)");
    }
    out.frames.push_back(hf);
    out.refs.push_back(Napi::Persistent(data));
  }
  return out;
}

DetectConfig parseDetectConfig(const Napi::Value& value) {
  DetectConfig cfg;
  if (value.IsUndefined() || value.IsNull()) return cfg;
  if (!value.IsObject()) DETQ_THROW_TYPE_ERROR(value.Env(), "params must be an object");
  auto obj = value.As<Napi::Object>();
  cfg.conf = static_cast<float>(optionalNumber(obj, "conf", cfg.conf));
  cfg.iou = static_cast<float>(optionalNumber(obj, "iou", cfg.iou));
  cfg.maxDet = static_cast<int>(optionalNumber(obj, "maxDet", cfg.maxDet));
  cfg.agnostic = optionalBool(obj, "agnosticNms", cfg.agnostic);
  cfg.multiLabel = optionalBool(obj, "multiLabel", cfg.multiLabel);
  if (cfg.maxDet < 1) DETQ_THROW_TYPE_ERROR(value.Env(), "maxDet must be at least 1");
  Napi::Value classes = obj.Get("classes");
  if (classes.IsArray()) {
    auto arr = classes.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) cfg.classes.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  return cfg;
}

LoadOptions parseLoadOptions(const Napi::Object& obj) {
  LoadOptions o;
  o.backend = requireString(obj, "backend", "loadModel");
  o.path = requireString(obj, "path", "loadModel");
  o.device = static_cast<int>(optionalNumber(obj, "device", 0));
  o.half = optionalBool(obj, "half", false);
  o.channelsLast = optionalBool(obj, "channelsLast", o.channelsLast);
  o.cudaGraphs = optionalBool(obj, "cudaGraphs", o.cudaGraphs);
  o.maxBatch = static_cast<int>(optionalNumber(obj, "maxBatch", o.maxBatch));
  o.inputWidth = static_cast<int>(optionalNumber(obj, "inputWidth", 0));
  o.inputHeight = static_cast<int>(optionalNumber(obj, "inputHeight", 0));
  Napi::Value sizes = obj.Get("batchSizes");
  if (sizes.IsArray()) {
    auto arr = sizes.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr.Get(i);
      if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 1) DETQ_THROW_TYPE_ERROR(obj.Env(), "loadModel: batchSizes must hold positive integers");
      o.batchSizes.push_back(v.As<Napi::Number>().Int32Value());
    }
  }
  Napi::Value plan = obj.Get("plan");
  if (plan.IsBuffer()) {
    auto buf = plan.As<Napi::Buffer<char>>();
    o.plan.assign(buf.Data(), buf.Data() + buf.Length());
  }
  if (obj.Has("precision")) o.precision = requireString(obj, "precision", "loadModel");
  if (obj.Has("end2end") && obj.Get("end2end").IsBoolean())
    o.end2end = obj.Get("end2end").As<Napi::Boolean>().Value() ? End2EndHint::kYes : End2EndHint::kNo;
  return o;
}

}  // namespace detq
