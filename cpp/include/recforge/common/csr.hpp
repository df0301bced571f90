// A non-owning view of a CSR matrix given as three arrays (indptr int64, indices int32,
// data float32), the form every recforge kernel receives from Python.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace recforge {

struct CsrView {
    const int64_t* indptr = nullptr;
    const int32_t* indices = nullptr;
    const float* data = nullptr;  // may be null when only the pattern matters
    int64_t n_rows = 0;
    int64_t n_cols = 0;

    bool present() const { return indptr != nullptr; }
    int64_t nnz() const { return present() ? indptr[n_rows] : 0; }
    int64_t row_begin(int64_t row) const { return indptr[row]; }
    int64_t row_end(int64_t row) const { return indptr[row + 1]; }

    // Checks the structural contract in O(rows + nnz): monotone indptr starting at 0 and column
    // indices inside [0, n_cols). Throws std::invalid_argument / std::out_of_range.
    void validate(const char* what) const {
        if (!present()) return;
        if (n_rows < 0 || n_cols < 0) throw std::invalid_argument(std::string(what) + ": negative shape");
        if (indptr[0] != 0)
            throw std::invalid_argument(std::string(what) + ": indptr must start at 0");
        for (int64_t r = 0; r < n_rows; ++r) {
            if (indptr[r + 1] < indptr[r])
                throw std::invalid_argument(std::string(what) + ": indptr must be non-decreasing");
        }
        const int64_t total = indptr[n_rows];
        for (int64_t p = 0; p < total; ++p) {
            if (indices[p] < 0 || indices[p] >= n_cols)
                throw std::out_of_range(std::string(what) + ": column index " + std::to_string(indices[p]) +
                                        " outside [0, " + std::to_string(n_cols) + ")");
        }
    }
};

}  // namespace recforge
