// One log sink for the whole addon: runtime loggers (TensorRT's ILogger, errors recorded on worker
// threads) call detq::log from any thread; messages reach the JS logger set with setLogger().
#pragma once

#include <napi.h>

#include <string>

namespace detq {

enum class LogLevel { kError, kWarn, kInfo, kDebug };

void log(LogLevel level, const std::string& message);
// Whether a message at `level` would reach the sink: lets costly diagnostics (timing events) run only then.
bool logs(LogLevel level);

// Installs `fn(level, message)` as the sink (JS thread only). Without one, messages go to stderr.
// Messages above `maxLevel` are dropped here, before they cost the JS thread a call.
void setLogSink(Napi::Env env, Napi::Function fn, LogLevel maxLevel);
// The level named 'error' | 'warn' | 'info' | 'debug', or false when the name is none of them.
bool parseLogLevel(const std::string& name, LogLevel* level);

}  // namespace detq
