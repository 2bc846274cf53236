// The thread an execution context owns. Jobs queue here (many concurrent infer() calls are safe),
// run in order on this thread, and settle their promises on the JS thread, in submission order,
// through a ThreadSafeFunction. Nothing runs on the JS thread or the libuv pool. Inference batches
// overlap: the thread launches the next queued batch while up to the pipeline's slots() - 1 earlier ones
// are on the device, then waits for the oldest one's boxes.
#pragma once

#include <napi.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "pipeline.h"

namespace detq {

class Job {
 public:
  virtual ~Job() = default;
  // On the context thread; may throw: the message rejects the promise. What it leaves running on the
  // device is finished by complete(), which the thread calls once enough later pipelined() jobs have
  // been launched (or none is queued).
  virtual void launch(Pipeline& pipeline) = 0;
  virtual void complete(Pipeline&) {}
  // Whether this job may launch while the previous one is still on the device (inference batches); any
  // other job finds the pipeline idle.
  virtual bool pipelined() const { return false; }
  // On the JS thread, after launch() and complete() succeeded.
  virtual Napi::Value result(Napi::Env env) = 0;

 private:
  friend class ExecutionThread;
  std::unique_ptr<Napi::Promise::Deferred> deferred_;
  Napi::ObjectReference owner_;  // keeps the JS wrapper (and so this thread) alive while the job is pending
  std::string error_;
  bool stop_ = false;
  std::chrono::steady_clock::time_point submitted_;
};

class ExecutionThread {
 public:
  using PipelineFactory = std::function<std::unique_ptr<Pipeline>()>;
  ExecutionThread(Napi::Env env, PipelineFactory factory);
  // Joins an idle thread (pending jobs keep the owner alive, so a finalizer only meets an idle one).
  ~ExecutionThread();

  Napi::Promise submit(Napi::Object owner, std::unique_ptr<Job> job);
  // Lets queued jobs finish, frees the pipeline on its thread, joins; resolves when joined.
  Napi::Promise shutdown(Napi::Object owner);
  bool closed() const { return closed_; }

 private:
  void loop();
  // Hands a finished job to the JS thread, which settles its promise.
  void post(std::unique_ptr<Job> job);
  void settle(Napi::Env env, Job* job);
  Napi::Env env_;
  PipelineFactory factory_;
  Napi::ThreadSafeFunction tsfn_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::thread thread_;
  bool closed_ = false;  // JS side: no more jobs accepted
  bool joined_ = false;
  int pending_ = 0;      // JS side: jobs not yet settled (the TSFN keeps the loop alive only while > 0)
};

}  // namespace detq
