// Helpers shared by the binding files: array checks and CSR views over NumPy arrays.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "recforge/common/csr.hpp"

namespace recforge::bindings {

namespace py = pybind11;

template <class T>
using CArray = py::array_t<T, py::array::c_style>;

template <class T>
void require_ndim(const CArray<T>& a, int ndim, const char* name) {
    if (a.ndim() != ndim)
        throw std::invalid_argument(std::string(name) + " must be " + std::to_string(ndim) +
                                    "-dimensional, got " + std::to_string(a.ndim()) + " dimensions");
}

// A CSR given as (indptr int64, indices int32, data float32 or None) plus its shape.
inline CsrView csr_view(const std::optional<CArray<int64_t>>& indptr,
                        const std::optional<CArray<int32_t>>& indices,
                        const std::optional<CArray<float>>& data, int64_t n_rows, int64_t n_cols,
                        const char* name) {
    CsrView v;
    if (!indptr) return v;
    if (!indices) throw std::invalid_argument(std::string(name) + ": indices are missing");
    require_ndim(*indptr, 1, name);
    require_ndim(*indices, 1, name);
    if (indptr->shape(0) != n_rows + 1)
        throw std::invalid_argument(std::string(name) + ": indptr must have n_rows + 1 = " +
                                    std::to_string(n_rows + 1) + " entries, got " +
                                    std::to_string(indptr->shape(0)));
    const int64_t nnz = indptr->at(n_rows);
    if (nnz < 0 || indices->shape(0) < nnz)
        throw std::invalid_argument(std::string(name) + ": indptr[-1] does not match the number of indices");
    if (data && data->shape(0) < nnz)
        throw std::invalid_argument(std::string(name) + ": data is shorter than indices");
    v.indptr = indptr->data();
    v.indices = indices->data();
    v.data = data ? data->data() : nullptr;
    v.n_rows = n_rows;
    v.n_cols = n_cols;
    return v;
}

}  // namespace recforge::bindings
