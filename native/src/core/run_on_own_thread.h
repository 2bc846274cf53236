// Runs one long native task (loading a model, building a TensorRT engine) on a thread of its own and
// settles a promise with its result through a ThreadSafeFunction; the thread is joined on settling.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace detq {

template <typename Result>
Napi::Promise runOnOwnThread(Napi::Env env, const char* name, std::function<Result()> work,
                             std::function<Napi::Value(Napi::Env, Result&)> toJs) {
  struct State {
    Napi::Promise::Deferred deferred;
    Napi::ThreadSafeFunction tsfn;
    std::thread thread;
    Result result{};
    std::string error;
    std::function<Napi::Value(Napi::Env, Result&)> toJs;
  };
  auto* state = new State{Napi::Promise::Deferred::New(env), {}, {}, {}, {}, std::move(toJs)};
  Napi::Promise promise = state->deferred.Promise();
  state->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function(), name, 0, 1);
  state->thread = std::thread([state, work = std::move(work)] {
    try {
      state->result = work();
    } catch (const std::exception& e) {
      state->error = e.what();
    } catch (...) {
      state->error = "unknown native error";
    }
    state->tsfn.BlockingCall([state](Napi::Env env, Napi::Function) {
      std::unique_ptr<State> owned(state);
      owned->thread.join();
      owned->tsfn.Release();
      if (env == nullptr) return;
      Napi::HandleScope scope(env);
      if (!owned->error.empty()) {
        owned->deferred.Reject(Napi::Error::New(env, owned->error).Value());
        return;
      }
      try {
        owned->deferred.Resolve(owned->toJs(env, owned->result));
      } catch (const std::exception& e) {
        owned->deferred.Reject(Napi::Error::New(env, e.what()).Value());
      }
    });
  });
  return promise;
}

}  // namespace detq
