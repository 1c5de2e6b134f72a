// The engine's jobs and the one worker thread that runs them, in order. Any
// thread submits; only the worker runs bodies. A job is plain data (id, kind,
// body) with a token its body reads to learn that it should stop: an analysis
// job is superseded by any newer analysis job (queued ones are dropped before
// they start, a running one is told to stop), and cancel() asks the running
// job to stop early and deliver what it has. No Qt event loop is involved, so
// nothing runs re-entrantly inside a job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace deformscope::ui {

// What a running job reads to know whether to go on. Set from other threads.
struct JobToken {
    std::atomic<bool> superseded{false}; // a newer analysis came (or the engine is stopping): deliver nothing
    std::atomic<bool> cancelled{false};  // the user cancelled: stop early, deliver what there is

    bool stop() const { return superseded.load() || cancelled.load(); }
};

struct Job {
    enum class Kind { Analysis, Other };
    uint64_t id = 0;
    Kind kind = Kind::Other;
    std::function<void(JobToken&)> body;
    std::shared_ptr<JobToken> token = std::make_shared<JobToken>();
};

class JobQueue {
public:
    // `onWorkerStart` runs first on the worker thread (per-thread settings such as LibTorch's grad mode).
    explicit JobQueue(std::function<void()> onWorkerStart = {});
    // Stops: the running job is superseded, queued ones are dropped; waits for the worker.
    ~JobQueue();
    JobQueue(const JobQueue&) = delete;
    JobQueue& operator=(const JobQueue&) = delete;

    // Thread-safe. Ids increase; an analysis job supersedes every analysis with a smaller id.
    uint64_t nextId();
    void submit(Job job);
    // Thread-safe: asks the running job to stop early (no effect when none runs).
    void cancelRunning();

private:
    void work(std::function<void()> onWorkerStart);

    std::atomic<uint64_t> m_lastId{0};
    std::mutex m_mutex; // guards the members below
    std::condition_variable m_wake;
    std::deque<Job> m_queue;
    std::shared_ptr<JobToken> m_running; // token of the running job, null when idle
    Job::Kind m_runningKind = Job::Kind::Other;
    uint64_t m_runningId = 0;
    bool m_stopping = false;
    std::thread m_worker; // last: starts after the members above exist
};

} // namespace deformscope::ui
