#include "ui/engine/job_queue.h"

#include <algorithm>

namespace deformscope::ui {

JobQueue::JobQueue(std::function<void()> onWorkerStart)
    : m_worker([this, start = std::move(onWorkerStart)]() mutable { work(std::move(start)); }) {}

JobQueue::~JobQueue() {
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
        m_queue.clear();
        if (m_running) {
            m_running->superseded = true;
            m_running->cancelled = true;
        }
    }
    m_wake.notify_all();
    m_worker.join();
}

uint64_t JobQueue::nextId() { return ++m_lastId; }

void JobQueue::submit(Job job) {
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping)
            return;
        if (job.kind == Job::Kind::Analysis) {
            // Older clicks are dropped before they start, and a running one stops at its next check.
            m_queue.erase(std::remove_if(m_queue.begin(), m_queue.end(),
                                         [&](const Job& q) { return q.kind == Job::Kind::Analysis && q.id < job.id; }),
                          m_queue.end());
            if (m_running && m_runningKind == Job::Kind::Analysis && m_runningId < job.id)
                m_running->superseded = true;
        }
        m_queue.push_back(std::move(job));
    }
    m_wake.notify_one();
}

void JobQueue::cancelRunning() {
    std::lock_guard lock(m_mutex);
    if (m_running)
        m_running->cancelled = true;
}

void JobQueue::work(std::function<void()> onWorkerStart) {
    if (onWorkerStart)
        onWorkerStart();
    while (true) {
        Job job;
        {
            std::unique_lock lock(m_mutex);
            m_wake.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
            if (m_stopping)
                return;
            job = std::move(m_queue.front());
            m_queue.pop_front();
            m_running = job.token;
            m_runningKind = job.kind;
            m_runningId = job.id;
        }
        try {
            job.body(*job.token); // bodies report their own failures; nothing may end the worker
        } catch (...) {
        }
        std::lock_guard lock(m_mutex);
        m_running.reset();
    }
}

} // namespace deformscope::ui
