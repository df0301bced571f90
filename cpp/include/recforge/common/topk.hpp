// Bounded top-k selection with a deterministic order: higher score first, ties broken by the
// smaller item index (the order of a stable argsort of -score). NaN scores are never selected.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace recforge {

struct Scored {
    float score;
    int32_t item;
};

// True when a ranks before b.
inline bool ranks_before(const Scored& a, const Scored& b) {
    return a.score > b.score || (a.score == b.score && a.item < b.item);
}

// The same order as a function object, so the heap algorithms inline the comparison.
struct RanksBefore {
    bool operator()(const Scored& a, const Scored& b) const { return ranks_before(a, b); }
};

class TopK {
public:
    explicit TopK(int k = 0) { reset(k); }

    void reset(int k) {
        k_ = k;
        heap_.clear();
        heap_.reserve(static_cast<size_t>(std::max(k, 0)));
    }

    // Scores strictly below this can never enter; callers use it as a cheap pre-filter.
    float threshold() const {
        return full() ? heap_.front().score : -std::numeric_limits<float>::infinity();
    }
    bool full() const { return static_cast<int>(heap_.size()) >= k_; }

    void push(float score, int32_t item) {
        if (k_ <= 0 || score != score) return;  // NaN never ranks
        const Scored s{score, item};
        if (!full()) {
            heap_.push_back(s);
            std::push_heap(heap_.begin(), heap_.end(), RanksBefore{});
        } else if (ranks_before(s, heap_.front())) {
            std::pop_heap(heap_.begin(), heap_.end(), RanksBefore{});
            heap_.back() = s;
            std::push_heap(heap_.begin(), heap_.end(), RanksBefore{});
        }
    }

    // The selection best first; leaves the heap empty for reuse.
    const std::vector<Scored>& take_sorted() {
        std::sort_heap(heap_.begin(), heap_.end(), RanksBefore{});
        sorted_.swap(heap_);
        heap_.clear();
        return sorted_;
    }

    // Writes the selection best first; slots beyond the number selected get item -1, score -inf.
    void write_sorted(int32_t* items, float* scores) {
        std::sort_heap(heap_.begin(), heap_.end(), RanksBefore{});
        const int n = static_cast<int>(heap_.size());
        for (int i = 0; i < n; ++i) {
            items[i] = heap_[static_cast<size_t>(i)].item;
            scores[i] = heap_[static_cast<size_t>(i)].score;
        }
        for (int i = n; i < k_; ++i) {
            items[i] = -1;
            scores[i] = -std::numeric_limits<float>::infinity();
        }
        heap_.clear();
    }

private:
    int k_ = 0;
    std::vector<Scored> heap_;  // a heap whose front is the worst kept item
    std::vector<Scored> sorted_;
};

}  // namespace recforge
