// Bindings of the explicit-feedback (rating prediction) factorization kernels. Every function
// exists for float32 and float64 arrays (overloads; arrays are never converted), checks shapes
// and releases the GIL around the kernel.
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>

#include "common.hpp"
#include "recforge/common/random.hpp"
#include "recforge/factorization/explicit.hpp"

using namespace recforge;
using namespace recforge::bindings;
namespace mf = recforge::explicit_mf;

namespace {

template <class T>
void require_shape(const CArray<T>& a, int64_t rows, int64_t cols, const char* name) {
    require_ndim(a, 2, name);
    if (a.shape(0) != rows || a.shape(1) != cols)
        throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + "), got (" + std::to_string(a.shape(0)) + ", " +
                                    std::to_string(a.shape(1)) + ")");
}

template <class T>
void require_len(const CArray<T>& a, int64_t n, const char* name) {
    require_ndim(a, 1, name);
    if (a.shape(0) != n)
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(n) + " entries, got " +
                                    std::to_string(a.shape(0)));
}

// lr and reg hold the groups in the order bu, bi, pu, qi, yj.
template <class T>
mf::SgdRates<T> make_rates(const std::array<double, 5>& lr, const std::array<double, 5>& reg) {
    mf::SgdRates<T> r;
    r.lr_bu = static_cast<T>(lr[0]);
    r.lr_bi = static_cast<T>(lr[1]);
    r.lr_pu = static_cast<T>(lr[2]);
    r.lr_qi = static_cast<T>(lr[3]);
    r.lr_yj = static_cast<T>(lr[4]);
    r.reg_bu = static_cast<T>(reg[0]);
    r.reg_bi = static_cast<T>(reg[1]);
    r.reg_pu = static_cast<T>(reg[2]);
    r.reg_qi = static_cast<T>(reg[3]);
    r.reg_yj = static_cast<T>(reg[4]);
    return r;
}

// A factor matrix of any strides (the SVD epoch takes views of the first k columns of wider,
// padded rows and updates them in place).
template <class T>
using StridedArray = py::array_t<T>;

// The row stride in elements of a C-contiguous factor matrix (k)...
template <class T>
int64_t row_stride(const CArray<T>& a, const char* name) {
    require_ndim(a, 2, name);
    return a.shape(1);
}

// ... and of a strided one, whose columns must be adjacent and rows at least k elements apart.
template <class T>
int64_t row_stride(const StridedArray<T>& a, const char* name) {
    if (a.ndim() != 2)
        throw std::invalid_argument(std::string(name) + " must be 2-dimensional, got " + std::to_string(a.ndim()) +
                                    " dimensions");
    const int64_t k = a.shape(1), s0 = a.strides(0), s1 = a.strides(1);
    const int64_t size = static_cast<int64_t>(sizeof(T));
    if (a.shape(0) <= 1) return k;  // one row: its stride is arbitrary and unused
    if ((k > 1 && s1 != size) || s0 % size != 0 || s0 / size < k)
        throw std::invalid_argument(std::string(name) +
                                    " must be C-contiguous or a view of the first columns of a C-contiguous array");
    return s0 / size;
}

// The learned arrays of a model, checked against each other.
template <class T, class A>
mf::Factors<T> make_factors(A& user_factors, A& item_factors, std::optional<CArray<T>>& user_bias,
                            std::optional<CArray<T>>& item_bias, double global_mean) {
    const int64_t us = row_stride<T>(user_factors, "user_factors");
    const int64_t is = row_stride<T>(item_factors, "item_factors");
    if (user_factors.shape(1) != item_factors.shape(1))
        throw std::invalid_argument("user and item factors have different numbers of columns");
    mf::Factors<T> m;
    m.n_users = user_factors.shape(0);
    m.n_items = item_factors.shape(0);
    m.k = static_cast<int>(user_factors.shape(1));
    m.user_factors = user_factors.mutable_data();
    m.item_factors = item_factors.mutable_data();
    m.user_stride = us == m.k ? 0 : us;
    m.item_stride = is == m.k ? 0 : is;
    if (user_bias.has_value() != item_bias.has_value())
        throw std::invalid_argument("give both user_bias and item_bias, or neither");
    if (user_bias) {
        require_len(*user_bias, m.n_users, "user_bias");
        require_len(*item_bias, m.n_items, "item_bias");
        m.user_bias = user_bias->mutable_data();
        m.item_bias = item_bias->mutable_data();
        m.global_mean = static_cast<T>(global_mean);
    }
    return m;
}

py::tuple stats_tuple(const mf::EpochStats& s) { return py::make_tuple(s.sse, s.n); }

template <class T>
void bind_typed(py::module_& m) {
    m.def(
        "fill_normal",
        [](StridedArray<T>& out, double mean, double std, uint64_t seed) {
            const int64_t stride = row_stride<T>(out, "out");
            if (!std::isfinite(mean) || !std::isfinite(std) || std < 0)
                throw std::invalid_argument("mean and std must be finite and std non-negative");
            T* data = out.mutable_data();
            const int64_t rows = out.shape(0), cols = out.shape(1);
            py::gil_scoped_release release;
            fill_normal<T>(data, rows, cols, stride, mean, std, seed);
        },
        py::arg("out").noconvert(), py::arg("mean"), py::arg("std"), py::arg("seed"),
        "Fills a 2-D array (or a view of the first columns of one) with N(mean, std^2) draws from `seed` "
        "(ziggurat normals of a splitmix64 stream, row by row).");
    m.def(
        "svd_epoch",
        [](const CArray<int32_t>& users, const CArray<int32_t>& items, const CArray<T>& ratings,
           StridedArray<T>& user_factors, StridedArray<T>& item_factors, std::optional<CArray<T>> user_bias,
           std::optional<CArray<T>> item_bias, double global_mean, const std::array<double, 5>& lr,
           const std::array<double, 5>& reg, bool shuffle, uint64_t seed, int n_threads, int64_t min_block,
           mf::SvdWorkspace* workspace) {
            mf::Factors<T> f = make_factors<T>(user_factors, item_factors, user_bias, item_bias, global_mean);
            require_ndim(users, 1, "users");
            if (min_block < 1) throw std::invalid_argument("min_block must be at least 1");
            const int64_t n = users.shape(0);
            require_len(items, n, "items");
            require_len(ratings, n, "ratings");
            const auto rates = make_rates<T>(lr, reg);
            mf::EpochStats s;
            {
                py::gil_scoped_release release;
                s = mf::svd_sgd_epoch<T>(f, users.data(), items.data(), ratings.data(), n,
                                         rates, shuffle, seed, n_threads, min_block, workspace);
            }
            return stats_tuple(s);
        },
        py::arg("users").noconvert(), py::arg("items").noconvert(), py::arg("ratings").noconvert(),
        py::arg("user_factors").noconvert(), py::arg("item_factors").noconvert(),
        py::arg("user_bias").noconvert() = py::none(), py::arg("item_bias").noconvert() = py::none(),
        py::arg("global_mean") = 0.0, py::arg("lr"), py::arg("reg"), py::arg("shuffle") = true,
        py::arg("seed") = 0, py::arg("n_threads") = 1, py::arg("min_block") = 16384,
        py::arg("workspace") = nullptr,
        "One SGD epoch of biased MF / PMF over rating triples (in the grouped shuffle order of svd_epoch_order when "
        "shuffle); returns (sse, n). A workspace keeps the epoch's buffers for the next epoch. The factor arrays may "
        "be views of the first k columns of wider rows: float32 rows svd_padded_stride(k) floats apart, 64-byte "
        "aligned and zero after column k are updated in place.");

    m.def(
        "svdpp_epoch",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<T>& ratings,
           CArray<int32_t>& user_order, CArray<T>& user_factors, CArray<T>& item_factors,
           CArray<T>& implicit_factors, CArray<T> user_bias, CArray<T> item_bias, double global_mean,
           const std::array<double, 5>& lr, const std::array<double, 5>& reg, bool shuffle, uint64_t seed,
           int n_threads) {
            std::optional<CArray<T>> ub(user_bias), ib(item_bias);
            mf::Factors<T> f = make_factors(user_factors, item_factors, ub, ib, global_mean);
            require_shape(implicit_factors, f.n_items, f.k, "implicit_factors");
            f.implicit_factors = implicit_factors.mutable_data();
            const CsrView csr = csr_view(indptr, indices, std::nullopt, f.n_users, f.n_items, "ratings");
            require_ndim(ratings, 1, "ratings");
            if (ratings.shape(0) < csr.nnz()) throw std::invalid_argument("ratings is shorter than indices");
            require_len(user_order, f.n_users, "user_order");
            const auto rates = make_rates<T>(lr, reg);
            mf::EpochStats s;
            {
                py::gil_scoped_release release;
                s = mf::svdpp_sgd_epoch<T>(f, csr, ratings.data(), user_order.mutable_data(), rates, shuffle, seed,
                                           n_threads);
            }
            return stats_tuple(s);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("ratings").noconvert(),
        py::arg("user_order").noconvert(), py::arg("user_factors").noconvert(), py::arg("item_factors").noconvert(),
        py::arg("implicit_factors").noconvert(), py::arg("user_bias").noconvert(), py::arg("item_bias").noconvert(),
        py::arg("global_mean"), py::arg("lr"), py::arg("reg"), py::arg("shuffle") = true, py::arg("seed") = 0,
        py::arg("n_threads") = 1,
        "One user-grouped SGD epoch of SVD++ (user order shuffled in place first); returns (sse, n).");

    m.def(
        "nmf_epoch",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<T>& ratings,
           const CArray<int64_t>& item_indptr, const CArray<int32_t>& item_users, const CArray<int64_t>& item_entry,
           CArray<T>& user_factors, CArray<T>& item_factors, std::optional<CArray<T>> user_bias,
           std::optional<CArray<T>> item_bias, double global_mean, double reg_pu, double reg_qi, double lr_bu,
           double lr_bi, double reg_bu, double reg_bi, int n_threads) {
            mf::Factors<T> f = make_factors(user_factors, item_factors, user_bias, item_bias, global_mean);
            const CsrView by_user = csr_view(indptr, indices, std::nullopt, f.n_users, f.n_items, "ratings");
            const CsrView by_item =
                csr_view(item_indptr, item_users, std::nullopt, f.n_items, f.n_users, "ratings by item");
            require_ndim(ratings, 1, "ratings");
            if (ratings.shape(0) < by_user.nnz()) throw std::invalid_argument("ratings is shorter than indices");
            require_ndim(item_entry, 1, "item_entry");
            if (item_entry.shape(0) < by_item.nnz()) throw std::invalid_argument("item_entry is too short");
            mf::EpochStats s;
            {
                py::gil_scoped_release release;
                s = mf::nmf_epoch<T>(f, by_user, ratings.data(), by_item, item_entry.data(), static_cast<T>(reg_pu),
                                     static_cast<T>(reg_qi), static_cast<T>(lr_bu), static_cast<T>(lr_bi),
                                     static_cast<T>(reg_bu), static_cast<T>(reg_bi), n_threads);
            }
            return stats_tuple(s);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("ratings").noconvert(),
        py::arg("item_indptr").noconvert(), py::arg("item_users").noconvert(), py::arg("item_entry").noconvert(),
        py::arg("user_factors").noconvert(), py::arg("item_factors").noconvert(),
        py::arg("user_bias").noconvert() = py::none(), py::arg("item_bias").noconvert() = py::none(),
        py::arg("global_mean") = 0.0, py::arg("reg_pu") = 0.06, py::arg("reg_qi") = 0.06, py::arg("lr_bu") = 0.005,
        py::arg("lr_bi") = 0.005, py::arg("reg_bu") = 0.02, py::arg("reg_bi") = 0.02, py::arg("n_threads") = 0,
        "One epoch of Surprise's multiplicative-update NMF; returns (sse, n).");

    m.def(
        "als_wr_sweep",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<T>& ratings,
           const CArray<T>& other, std::optional<CArray<T>> other_bias, CArray<T>& factors,
           std::optional<CArray<T>> bias, double reg, double global_mean, int n_threads) {
            require_ndim(other, 2, "other");
            require_ndim(factors, 2, "factors");
            if (other.shape(1) != factors.shape(1))
                throw std::invalid_argument("factors and other have different numbers of columns");
            const int64_t n_rows = factors.shape(0), n_other = other.shape(0);
            const int k = static_cast<int>(factors.shape(1));
            const CsrView csr = csr_view(indptr, indices, std::nullopt, n_rows, n_other, "ratings");
            require_ndim(ratings, 1, "ratings");
            if (ratings.shape(0) < csr.nnz()) throw std::invalid_argument("ratings is shorter than indices");
            if (bias.has_value() != other_bias.has_value())
                throw std::invalid_argument("give both bias and other_bias, or neither");
            if (bias) {
                require_len(*bias, n_rows, "bias");
                require_len(*other_bias, n_other, "other_bias");
            }
            T* b = bias ? bias->mutable_data() : nullptr;
            const T* ob = other_bias ? other_bias->data() : nullptr;
            mf::EpochStats s;
            {
                py::gil_scoped_release release;
                s = mf::als_wr_sweep<T>(csr, ratings.data(), other.data(), ob, n_other, factors.mutable_data(), b, k,
                                        static_cast<T>(reg), static_cast<T>(global_mean), n_threads);
            }
            return stats_tuple(s);
        },
        py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("ratings").noconvert(),
        py::arg("other").noconvert(), py::arg("other_bias").noconvert() = py::none(),
        py::arg("factors").noconvert(), py::arg("bias").noconvert() = py::none(), py::arg("reg") = 0.05,
        py::arg("global_mean") = 0.0, py::arg("n_threads") = 0,
        "One ALS-WR half sweep: solves every row of `factors` (and `bias`) against `other` in place; returns (sse, n).");

    m.def(
        "svd_loss_grad",
        [](const CArray<T>& p, const CArray<T>& q, double bu, double bi, double mu, double rating, bool biased,
           const std::array<double, 5>& reg) {
            require_ndim(p, 1, "p");
            require_len(q, p.shape(0), "q");
            const int k = static_cast<int>(p.shape(0));
            CArray<T> gp(k), gq(k);
            T gbu = 0, gbi = 0;
            const auto rates = make_rates<T>({0, 0, 0, 0, 0}, reg);
            const T loss = mf::svd_loss_grad<T>(p.data(), q.data(), static_cast<T>(bu), static_cast<T>(bi),
                                                static_cast<T>(mu), static_cast<T>(rating), k, biased, rates,
                                                gp.mutable_data(), gq.mutable_data(), &gbu, &gbi);
            return py::make_tuple(static_cast<double>(loss), gp, gq, static_cast<double>(gbu),
                                  static_cast<double>(gbi));
        },
        py::arg("p").noconvert(), py::arg("q").noconvert(), py::arg("bu"), py::arg("bi"), py::arg("mu"),
        py::arg("rating"), py::arg("biased"), py::arg("reg"),
        "Loss and gradients of one rating under biased MF / PMF: (loss, grad_p, grad_q, grad_bu, grad_bi).");

    m.def(
        "svdpp_loss_grad",
        [](const CArray<T>& p, const CArray<T>& q, const CArray<T>& implicit_rows, double bu, double bi, double mu,
           double rating, const std::array<double, 5>& reg) {
            require_ndim(p, 1, "p");
            require_len(q, p.shape(0), "q");
            const int k = static_cast<int>(p.shape(0));
            require_ndim(implicit_rows, 2, "implicit_rows");
            if (implicit_rows.shape(1) != k) throw std::invalid_argument("implicit_rows must have k columns");
            const int64_t n = implicit_rows.shape(0);
            CArray<T> gp(k), gq(k), gy({n, static_cast<int64_t>(k)});
            T gbu = 0, gbi = 0;
            const auto rates = make_rates<T>({0, 0, 0, 0, 0}, reg);
            const T loss = mf::svdpp_loss_grad<T>(p.data(), q.data(), implicit_rows.data(), n, static_cast<T>(bu),
                                                  static_cast<T>(bi), static_cast<T>(mu), static_cast<T>(rating), k,
                                                  rates, gp.mutable_data(), gq.mutable_data(), &gbu, &gbi,
                                                  gy.mutable_data());
            return py::make_tuple(static_cast<double>(loss), gp, gq, static_cast<double>(gbu),
                                  static_cast<double>(gbi), gy);
        },
        py::arg("p").noconvert(), py::arg("q").noconvert(), py::arg("implicit_rows").noconvert(), py::arg("bu"),
        py::arg("bi"), py::arg("mu"), py::arg("rating"), py::arg("reg"),
        "Loss and gradients of one rating under SVD++: (loss, grad_p, grad_q, grad_bu, grad_bi, grad_implicit).");
}

// An SvdTrainer of either value type as one Python class; epochs on one trainer take turns.
struct AnySvdTrainer {
    std::unique_ptr<mf::SvdTrainer<float>> f32;
    std::unique_ptr<mf::SvdTrainer<double>> f64;
    std::mutex busy;

    template <class T>
    mf::SvdTrainer<T>& get() {
        if constexpr (std::is_same_v<T, float>) {
            if (f32) return *f32;
        } else {
            if (f64) return *f64;
        }
        throw std::invalid_argument(std::string("the trainer holds ") + (f32 ? "float32" : "float64") +
                                    " ratings; pass factor and bias arrays of that dtype");
    }
};

template <class T>
std::unique_ptr<AnySvdTrainer> make_trainer(const CArray<int32_t>& users, const CArray<int32_t>& items,
                                            const CArray<T>& ratings, int64_t n_users, int64_t n_items) {
    require_ndim(users, 1, "users");
    const int64_t n = users.shape(0);
    require_len(items, n, "items");
    require_len(ratings, n, "ratings");
    if (n_users < 0 || n_items < 0) throw std::invalid_argument("n_users and n_items must be non-negative");
    auto out = std::make_unique<AnySvdTrainer>();
    py::gil_scoped_release release;
    auto trainer = std::make_unique<mf::SvdTrainer<T>>(users.data(), items.data(), ratings.data(), n, n_users, n_items);
    if constexpr (std::is_same_v<T, float>) out->f32 = std::move(trainer);
    else out->f64 = std::move(trainer);
    return out;
}

template <class T>
py::tuple trainer_epoch(AnySvdTrainer& self, StridedArray<T>& user_factors, StridedArray<T>& item_factors,
                        std::optional<CArray<T>> user_bias, std::optional<CArray<T>> item_bias, double global_mean,
                        const std::array<double, 5>& lr, const std::array<double, 5>& reg, bool shuffle,
                        uint64_t seed, int n_threads, int64_t min_block) {
    mf::SvdTrainer<T>& trainer = self.get<T>();
    mf::Factors<T> f = make_factors<T>(user_factors, item_factors, user_bias, item_bias, global_mean);
    if (min_block < 1) throw std::invalid_argument("min_block must be at least 1");
    const auto rates = make_rates<T>(lr, reg);
    mf::EpochStats s;
    {
        py::gil_scoped_release release;
        std::lock_guard<std::mutex> lock(self.busy);
        s = trainer.epoch(f, rates, shuffle, seed, n_threads, min_block);
    }
    return stats_tuple(s);
}

template <class T>
void bind_trainer_typed(py::class_<AnySvdTrainer>& c) {
    c.def(py::init(&make_trainer<T>), py::arg("users").noconvert(), py::arg("items").noconvert(),
          py::arg("ratings").noconvert(), py::arg("n_users"), py::arg("n_items"));
    c.def("epoch", &trainer_epoch<T>, py::arg("user_factors").noconvert(), py::arg("item_factors").noconvert(),
          py::arg("user_bias").noconvert() = py::none(), py::arg("item_bias").noconvert() = py::none(),
          py::arg("global_mean") = 0.0, py::arg("lr"), py::arg("reg"), py::arg("shuffle") = true,
          py::arg("seed") = 0, py::arg("n_threads") = 1, py::arg("min_block") = 16384,
          "svd_epoch on the trainer's ratings (the same order and result for the same seed); returns (sse, n).");
}

}  // namespace

void bind_factorization_explicit(py::module_& m) {
    py::class_<AnySvdTrainer> trainer(
        m, "SvdTrainer",
        "The rating triples of one SVD / PMF fit (users, items, ratings, n_users, n_items), checked and copied "
        "once, with the buffers of its epochs.");
    bind_trainer_typed<float>(trainer);
    bind_trainer_typed<double>(trainer);
    trainer.def_property_readonly("size", [](const AnySvdTrainer& t) { return t.f32 ? t.f32->size() : t.f64->size(); },
                                  "The number of ratings.");
    m.def(
        "svd_padded_stride",
        [](int k) { return mf::svd_padded_stride(k); }, py::arg("k"),
        "The row stride (in floats) on which the float32 SVD kernel updates factor rows in place: k rounded up "
        "to a multiple of the kernel's vector (8 floats for AVX2, 16 for AVX-512).");

    py::class_<mf::SvdWorkspace>(m, "SvdWorkspace",
                                 "Buffers of svd_epoch kept from one epoch to the next (one per concurrent fit).")
        .def(py::init<>());

    bind_typed<float>(m);
    bind_typed<double>(m);
    m.def(
        "svd_epoch_order",
        [](const CArray<int32_t>& users, const CArray<int32_t>& items, int64_t n_users, int64_t n_items, int k,
           int itemsize, bool shuffle, uint64_t seed, int n_threads, int64_t min_block) {
            require_ndim(users, 1, "users");
            const int64_t n = users.shape(0);
            require_len(items, n, "items");
            if (n_users < 1 || n_items < 1 || k < 1) throw std::invalid_argument("n_users, n_items and k must be positive");
            if (itemsize != 4 && itemsize != 8) throw std::invalid_argument("itemsize must be 4 or 8");
            if (min_block < 1) throw std::invalid_argument("min_block must be at least 1");
            for (int64_t t = 0; t < n; ++t) {
                if (users.data()[t] < 0 || users.data()[t] >= n_users || items.data()[t] < 0 || items.data()[t] >= n_items)
                    throw std::out_of_range("a user or item index is outside the declared counts");
            }
            mf::EpochPlan plan;
            {
                py::gil_scoped_release release;
                plan = mf::svd_epoch_plan(users.data(), items.data(), n, n_users, n_items, k,
                                          static_cast<size_t>(itemsize), shuffle, seed, n_threads, min_block);
            }
            py::array_t<int64_t> order(static_cast<py::ssize_t>(plan.order.size()));
            std::copy(plan.order.begin(), plan.order.end(), order.mutable_data());
            py::array_t<int64_t> offset(static_cast<py::ssize_t>(plan.offset.size()));
            std::copy(plan.offset.begin(), plan.offset.end(), offset.mutable_data());
            return py::make_tuple(order, offset);
        },
        py::arg("users").noconvert(), py::arg("items").noconvert(), py::arg("n_users"), py::arg("n_items"),
        py::arg("k"), py::arg("itemsize") = 4, py::arg("shuffle") = true, py::arg("seed") = 0,
        py::arg("n_threads") = 1, py::arg("min_block") = 16384,
        "The visiting order of svd_epoch: (order, block offsets), order[j] being the input position of the j-th step.");

    m.def("sgd_kernel_name", []() { return std::string(mf::sgd_kernel_name()); },
          "The instruction set of the float32 SVD kernel on this CPU.");
}
