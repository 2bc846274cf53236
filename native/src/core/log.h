// One log sink for the whole addon: runtime loggers (TensorRT's ILogger, errors recorded on worker
// threads) call detq::log from any thread; messages reach the JS logger set with setLogger().
#pragma once

#include <napi.h>

#include <string>

namespace detq {

enum class LogLevel { kError, kWarn, kInfo, kDebug };

void log(LogLevel level, const std::string& message);

// Installs `fn(level, message)` as the sink (JS thread only). Without one, messages go to stderr.
void setLogSink(Napi::Env env, Napi::Function fn);

}  // namespace detq
