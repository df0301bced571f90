// parallel_for over std::thread: workers take chunks from an atomic counter (so uneven work
// balances itself); the first exception thrown by any worker stops the others and is rethrown
// in the calling thread after every worker has joined.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace recforge {

// 0 or negative means "all hardware threads".
inline int resolve_threads(int n_threads) {
    if (n_threads > 0) return n_threads;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
}

// Calls fn(i, worker) for every i in [begin, end); `worker` is in [0, n_workers) and lets a
// caller index per-thread scratch space. Returns the number of workers used.
template <class Fn>
int parallel_for(int64_t begin, int64_t end, int n_threads, Fn&& fn, int64_t chunk = 1) {
    if (end <= begin) return 0;
    chunk = std::max<int64_t>(chunk, 1);
    const int64_t n_chunks = (end - begin + chunk - 1) / chunk;
    const int workers = static_cast<int>(std::min<int64_t>(resolve_threads(n_threads), n_chunks));
    if (workers <= 1) {
        for (int64_t i = begin; i < end; ++i) fn(i, 0);
        return 1;
    }
    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto run = [&](int worker) {
        try {
            while (!failed.load(std::memory_order_relaxed)) {
                const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
                if (c >= n_chunks) break;
                const int64_t lo = begin + c * chunk;
                const int64_t hi = std::min(end, lo + chunk);
                for (int64_t i = lo; i < hi; ++i) fn(i, worker);
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            failed.store(true);
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(workers - 1));
    for (int w = 1; w < workers; ++w) threads.emplace_back(run, w);
    run(0);
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
    return workers;
}

// Number of workers parallel_for would use, for sizing per-thread scratch space.
inline int planned_workers(int64_t n_items, int n_threads, int64_t chunk = 1) {
    if (n_items <= 0) return 1;
    chunk = std::max<int64_t>(chunk, 1);
    const int64_t n_chunks = (n_items + chunk - 1) / chunk;
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(resolve_threads(n_threads), n_chunks)));
}

}  // namespace recforge
