#include "model_wrap.h"

#include "addon_data.h"
#include "napi_util.h"

namespace detq {

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {InstanceAccessor<&ModelWrap::Info>("info"), InstanceMethod<&ModelWrap::CreateContext>("createContext")});
}

Napi::Object ModelWrap::Wrap(Napi::Env env, std::shared_ptr<ModelState> model) {
  auto* data = env.GetInstanceData<AddonData>();
  // The constructor takes the model through an External so JS cannot build a Model by itself.
  auto external = Napi::External<std::shared_ptr<ModelState>>::New(env, new std::shared_ptr<ModelState>(std::move(model)),
                                                                   [](Napi::Env, std::shared_ptr<ModelState>* p) { delete p; });
  return data->model.New({external});
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) DETQ_THROW_TYPE_ERROR(info.Env(), "use loadModel() to create a Model");
  model_ = *info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data();
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo& info) {
  const ModelInfo& m = model_->info();
  auto obj = Napi::Object::New(info.Env());
  obj.Set("backend", m.backend);
  obj.Set("runtimeVersion", m.runtimeVersion);
  obj.Set("device", m.device);
  obj.Set("deviceIndex", m.deviceIndex);
  obj.Set("inputWidth", m.inputWidth);
  obj.Set("inputHeight", m.inputHeight);
  obj.Set("maxBatch", m.maxBatch);
  obj.Set("precision", precisionName(m.precision));
  obj.Set("inputType", dtypeName(m.inputType));
  obj.Set("cudaGraphs", m.cudaGraphs);
  const bool end2end = m.outputLayout == OutputLayout::kEnd2End;
  obj.Set("outputLayout", end2end ? "end2end" : "raw");
  // End-to-end outputs do not say how many classes there are: the caller's metadata does.
  obj.Set("numClasses", end2end ? 0 : m.outputRows - 4);
  obj.Set("anchors", end2end ? 0 : m.anchors);
  obj.Set("maxDetections", end2end ? m.outputRows : 0);
  auto sizes = Napi::Array::New(info.Env(), m.batchSizes.size());
  for (std::size_t i = 0; i < m.batchSizes.size(); ++i) sizes.Set(static_cast<uint32_t>(i), m.batchSizes[i]);
  obj.Set("batchSizes", sizes);
  obj.Set("profiles", m.profiles);
  return obj;
}

// createContext(profile?, batchesInFlight?): `profile` is the TensorRT optimisation profile the context
// owns; `batchesInFlight` its staging slots (default: the addon's batchesPerContext).
Napi::Value ModelWrap::CreateContext(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  auto external = Napi::External<std::shared_ptr<ModelState>>::New(info.Env(), new std::shared_ptr<ModelState>(model_),
                                                                   [](Napi::Env, std::shared_ptr<ModelState>* p) { delete p; });
  const int profile = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  return data->context.New({external, Napi::Number::New(info.Env(), profile), info.Length() > 1 ? info[1] : info.Env().Undefined()});
}

}  // namespace detq
