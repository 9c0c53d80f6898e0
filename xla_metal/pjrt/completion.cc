// Asynchronous execution: Execute returns once Python has scheduled the program on MLX; each
// execution becomes a job here, awaited (the bridge's await_execution) by whichever comes
// first:
//   - a thread that waits for an output (Await or OnReady on its ready event, e.g. JAX's
//     block_until_ready): it awaits the job itself, so a result that is waited for right away
//     costs no hand-over between threads;
//   - the background thread, for jobs nobody has waited for within kGrace, so every event
//     completes even when nobody asks (JAX registers on the completion event of every call).
//
// The background thread keeps one Python thread state for its whole life, so each wait costs
// a GIL acquisition and no thread-state setup; it waits with the GIL released. It is detached
// and the queue is never destroyed: at process exit the thread may be blocked in it, and
// nothing must run its destructor then. When Python starts to exit, QuiesceCompletion waits
// until the thread is out of Python: a thread that is inside it while the interpreter
// finalizes is torn down by Python, which would abort the process.
#include <chrono>
#include <deque>
#include <thread>

#include "internal.h"

namespace xla_metal {
namespace {

using Clock = std::chrono::steady_clock;
// How long a job waits for a thread of the framework to await it before the background
// thread does. Long against the few microseconds between Execute and block_until_ready, short
// against anything a user would notice in an event's completion.
constexpr std::chrono::microseconds kGrace(1000);

struct Job {
  int64_t job;  // the completion Python returned from execute
  ExecutionEvents events;
  Clock::time_point queued;
};

// Awaits the job through the bridge and completes its events with the outcome.
void Finish(Job& job) {
  XmAwaitExecutionArgs request{job.job};
  Status status = XM_CALL_BRIDGE(await_execution, &request);
  job.events.complete->Complete(CopyError(status.get()));
  job.events.outputs_ready->Complete(std::move(status));
}

class CompletionQueue {
 public:
  void Push(Job job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!started_) {
        std::thread([this] { Run(); }).detach();
        started_ = true;
      }
      jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
  }

  // Returns once the background thread is not inside Python, and keeps it out from then on
  // (its later bridge calls fail at once: the interpreter is shutting down).
  void Quiesce() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return !busy_; });
  }

  // Awaits `job` on this thread if it is still queued; otherwise another thread is awaiting
  // it already (or has), and the caller waits for the event as usual.
  void RunNow(int64_t job) {
    std::optional<Job> taken;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
        if (it->job == job) {
          taken = std::move(*it);
          jobs_.erase(it);
          break;
        }
      }
    }
    if (taken) Finish(*taken);
  }

 private:
  void Run() {
    AdoptPythonThreadState();
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return !jobs_.empty(); });
      const Clock::time_point due = jobs_.front().queued + kGrace;
      if (Clock::now() < due) {
        wake_.wait_until(lock, due);
        continue;  // the front may have been taken meanwhile
      }
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
      lock.unlock();
      Finish(job);
      lock.lock();
      busy_ = false;
      idle_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<Job> jobs_;
  bool started_ = false;
  bool busy_ = false;  // the background thread is awaiting a job (inside Python)
};

CompletionQueue& Queue() {
  static CompletionQueue* queue = new CompletionQueue;  // never destroyed (see above)
  return *queue;
}

}  // namespace

void QuiesceCompletion() { Queue().Quiesce(); }

ExecutionEvents AwaitExecution(int64_t job) {
  ExecutionEvents events{EventState::MakePending(), EventState::MakePending()};
  // The waiter names the job only: holding the event would keep it alive through itself.
  events.outputs_ready->SetWaiter([job] { Queue().RunNow(job); });
  Queue().Push({job, events, Clock::now()});
  return events;
}

}  // namespace xla_metal
