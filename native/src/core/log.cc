#include "log.h"

#include <atomic>
#include <iostream>
#include <mutex>
#include <optional>

namespace detq {
namespace {

std::mutex sinkMutex;
std::optional<Napi::ThreadSafeFunction> sink;
std::atomic<LogLevel> maxLevel{LogLevel::kDebug};

const char* levelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "info";
}

}  // namespace

void log(LogLevel level, const std::string& message) {
  if (level > maxLevel.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(sinkMutex);
  if (!sink) {
    std::cerr << "[detq native " << levelName(level) << "] " << message << std::endl;
    return;
  }
  auto* payload = new std::pair<LogLevel, std::string>(level, message);
  const napi_status status = sink->NonBlockingCall(payload, [](Napi::Env env, Napi::Function fn, std::pair<LogLevel, std::string>* p) {
    if (env != nullptr) fn.Call({Napi::String::New(env, levelName(p->first)), Napi::String::New(env, p->second)});
    delete p;
  });
  if (status != napi_ok) delete payload;
}

bool logs(LogLevel level) { return level <= maxLevel.load(std::memory_order_relaxed); }

bool parseLogLevel(const std::string& name, LogLevel* level) {
  for (LogLevel l : {LogLevel::kError, LogLevel::kWarn, LogLevel::kInfo, LogLevel::kDebug})
    if (name == levelName(l)) {
      *level = l;
      return true;
    }
  return false;
}

void setLogSink(Napi::Env env, Napi::Function fn, LogLevel level) {
  std::lock_guard<std::mutex> lock(sinkMutex);
  maxLevel.store(level, std::memory_order_relaxed);
  if (sink) sink->Release();
  sink = Napi::ThreadSafeFunction::New(env, fn, "detq-log", 0, 1);
  // Logging must not keep the process alive.
  sink->Unref(env);
}

}  // namespace detq
