#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_topk(py::module_& m);
void bind_metrics(py::module_& m);
void bind_neighbors(py::module_& m);
void bind_beyond(py::module_& m);
void bind_factorization_implicit(py::module_& m);
void bind_factorization_explicit(py::module_& m);
void bind_ranking(py::module_& m);
void bind_bandits(py::module_& m);
void bind_content(py::module_& m);
void bind_hybrid(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "recforge's compiled kernels (private: use the recforge package)";
    auto topk = m.def_submodule("topk", "Exact batched top-k selection");
    bind_topk(topk);
    auto metrics = m.def_submodule("metrics", "Ranking metrics");
    bind_metrics(metrics);
    auto beyond = m.def_submodule("beyond", "Beyond-accuracy metrics");
    bind_beyond(beyond);
    auto neighbors = m.def_submodule("neighbors", "Neighbourhood collaborative filtering");
    bind_neighbors(neighbors);
    auto factorization_implicit =
        m.def_submodule("factorization_implicit", "Implicit-feedback factorization: ALS, BPR, EASE");
    bind_factorization_implicit(factorization_implicit);
    auto factorization_explicit = m.def_submodule(
        "factorization_explicit", "Explicit-feedback factorization: SVD, PMF, SVD++, NMF, ALS-WR");
    bind_factorization_explicit(factorization_explicit);
    auto ranking = m.def_submodule("ranking", "Learning to rank: histogram GBDT and linear rankers");
    bind_ranking(ranking);
    auto bandits = m.def_submodule("bandits", "Bandit policies and off-policy estimators");
    bind_bandits(bandits);
    auto content = m.def_submodule("content", "Content-based kernels: TF-IDF, BM25, profiles, cosine scores");
    bind_content(content);
    auto hybrid = m.def_submodule("hybrid", "Feature factorization (LightFM model)");
    bind_hybrid(hybrid);
}
