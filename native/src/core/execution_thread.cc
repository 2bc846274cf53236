#include "execution_thread.h"

#include "log.h"

namespace detq {
namespace {

class StopJob : public Job {
 public:
  void launch(Pipeline&) override {}
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }
};

}  // namespace

ExecutionThread::ExecutionThread(Napi::Env env, PipelineFactory factory) : env_(env), factory_(std::move(factory)) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function(), "detq-context", 0, 1);
  tsfn_.Unref(env);
  thread_ = std::thread([this] { loop(); });
}

ExecutionThread::~ExecutionThread() {
  if (joined_) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::make_unique<StopJob>());
    queue_.back()->stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
  tsfn_.Abort();
}

void ExecutionThread::loop() {
  std::unique_ptr<Pipeline> pipeline;
  std::string initError;
  try {
    pipeline = factory_();
  } catch (const std::exception& e) {
    initError = e.what();
  } catch (...) {
    initError = "unknown native error";
  }
  // Jobs are refused with initError when there is no pipeline: it must never be empty then.
  if (!pipeline && initError.empty()) initError = "this execution context could not be created";
  // Launched jobs, oldest first, their work possibly still on the device. After each launch the oldest
  // are completed until slots() - 1 remain, so the next launch finds a free staging slot.
  std::deque<std::unique_ptr<Job>> launched;
  const auto attempt = [](Job& job, const std::function<void()>& work) {
    try {
      work();
    } catch (const std::exception& e) {
      job.error_ = e.what();
    } catch (...) {
      job.error_ = "unknown native error";
    }
  };
  const auto completeOldest = [&] {
    std::unique_ptr<Job> oldest = std::move(launched.front());
    launched.pop_front();
    attempt(*oldest, [&] { oldest->complete(*pipeline); });
    post(std::move(oldest));
  };
  const auto completeAll = [&] {
    while (!launched.empty()) completeOldest();
  };
  const std::size_t onDevice = pipeline ? static_cast<std::size_t>(pipeline->slots() - 1) : 0;
  for (;;) {
    std::unique_ptr<Job> job;
    double idleMs = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // With batches on the device, take a job only when one is queued already; otherwise finish the oldest.
      if (launched.empty()) {
        const auto idleFrom = std::chrono::steady_clock::now();
        wake_.wait(lock, [this] { return !queue_.empty(); });
        idleMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - idleFrom).count();
      }
      if (!queue_.empty()) {
        job = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (!job) {
      completeOldest();
      continue;
    }
    const bool stop = job->stop_;
    if (stop || !job->pipelined()) completeAll();
    if (stop) {
      pipeline.reset();
    } else if (!pipeline) {
      job->error_ = initError;
    } else {
      // Shown with DETQ_DEBUG: queueing delay (infer() to this thread picking it up) and how long the
      // thread had nothing to run before this job (a context starved of frames).
      log(LogLevel::kDebug, "job waited " + std::to_string(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - job->submitted_).count()) +
                                " ms, thread idle " + std::to_string(idleMs) + " ms");
      attempt(*job, [&] { job->launch(*pipeline); });
    }
    if (stop) {
      post(std::move(job));
      return;
    }
    if (job->error_.empty() && job->pipelined()) {
      launched.push_back(std::move(job));
      while (launched.size() > onDevice) completeOldest();
      continue;
    }
    // A failed or non-pipelined job settles now, after the earlier ones: promises settle in submission order.
    completeAll();
    if (job->error_.empty()) attempt(*job, [&] { job->complete(*pipeline); });
    post(std::move(job));
  }
}

void ExecutionThread::post(std::unique_ptr<Job> job) {
  if (!job->deferred_) return;  // a finalizer's stop: nobody to tell
  Job* raw = job.release();
  const napi_status status = tsfn_.BlockingCall([this, raw](Napi::Env env, Napi::Function) { settle(env, raw); });
  if (status != napi_ok) {
    log(LogLevel::kError, "could not settle a promise: the JS environment is shutting down");
    delete raw;
  }
}

void ExecutionThread::settle(Napi::Env env, Job* raw) {
  std::unique_ptr<Job> job(raw);
  if (env == nullptr) return;
  Napi::HandleScope scope(env);
  if (job->stop_) {
    thread_.join();
    joined_ = true;
    tsfn_.Release();
  }
  if (--pending_ == 0 && !job->stop_) tsfn_.Unref(env);
  if (!job->error_.empty()) {
    job->deferred_->Reject(Napi::Error::New(env, job->error_).Value());
    return;
  }
  try {
    job->deferred_->Resolve(job->result(env));
  } catch (const std::exception& e) {
    job->deferred_->Reject(Napi::Error::New(env, e.what()).Value());
  }
}

Napi::Promise ExecutionThread::submit(Napi::Object owner, std::unique_ptr<Job> job) {
  Napi::Env env = owner.Env();
  job->deferred_ = std::make_unique<Napi::Promise::Deferred>(env);
  Napi::Promise promise = job->deferred_->Promise();
  if (closed_) {
    job->deferred_->Reject(Napi::Error::New(env, "this execution context has been disposed").Value());
    return promise;
  }
  job->owner_ = Napi::Persistent(owner);
  job->submitted_ = std::chrono::steady_clock::now();
  if (pending_++ == 0) tsfn_.Ref(env);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return promise;
}

Napi::Promise ExecutionThread::shutdown(Napi::Object owner) {
  Napi::Env env = owner.Env();
  if (closed_) {
    auto done = Napi::Promise::Deferred::New(env);
    done.Resolve(env.Undefined());
    return done.Promise();
  }
  auto stop = std::make_unique<StopJob>();
  stop->stop_ = true;
  Napi::Promise promise = submit(owner, std::move(stop));
  closed_ = true;
  return promise;
}

}  // namespace detq
