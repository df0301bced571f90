"""Type stubs of the compiled extension recforge._core (private; use the recforge package)."""

from types import ModuleType

import numpy as np
import numpy.typing as npt

class _TopK(ModuleType):
    def topk_dot(
        self,
        queries: npt.NDArray[np.float32],
        items: npt.NDArray[np.float32],
        k: int,
        exclude_indptr: npt.NDArray[np.int64] | None = None,
        exclude_indices: npt.NDArray[np.int32] | None = None,
        candidates: npt.NDArray[np.int32] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def topk_dense(
        self,
        scores: npt.NDArray[np.float32],
        k: int,
        exclude_indptr: npt.NDArray[np.int64] | None = None,
        exclude_indices: npt.NDArray[np.int32] | None = None,
        candidates: npt.NDArray[np.int32] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def topk_candidates(
        self,
        queries: npt.NDArray[np.float32],
        items: npt.NDArray[np.float32],
        candidates: npt.NDArray[np.int32],
        k: int,
        exclude_indptr: npt.NDArray[np.int64] | None = None,
        exclude_indices: npt.NDArray[np.int32] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def kernel_name(self) -> str: ...

class _Metrics(ModuleType):
    METRIC_NAMES: tuple[str, ...]
    def ranking_metrics(
        self,
        lists: npt.NDArray[np.int32],
        rel_indptr: npt.NDArray[np.int64],
        rel_indices: npt.NDArray[np.int32],
        rel_data: npt.NDArray[np.float32],
        n_items: int,
        k: int,
        gain: int = 0,
        ap_denominator: int = 0,
        rel_threshold: float = 0.0,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
    def ranking_auc(
        self,
        lists: npt.NDArray[np.int32],
        rel_indptr: npt.NDArray[np.int64],
        rel_indices: npt.NDArray[np.int32],
        rel_data: npt.NDArray[np.float32],
        n_items: int,
        exclude_indptr: npt.NDArray[np.int64] | None = None,
        exclude_indices: npt.NDArray[np.int32] | None = None,
        rel_threshold: float = 0.0,
        n_threads: int = 0,
    ) -> npt.NDArray[np.float64]: ...

topk: _TopK
metrics: _Metrics

class _Neighbors(ModuleType):
    SIMILARITY_CODES: dict[str, int]
    def similarity_topk(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        n_rows: int,
        n_cols: int,
        rows: npt.NDArray[np.int32] | None = None,
        kind: int = 1,
        co_rated: bool = False,
        k: int = 100,
        include_self: bool = False,
        positive_only: bool = False,
        shrink: float = 0.0,
        min_support: int = 1,
        alpha: float = 0.5,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        global_mean: float = 0.0,
        row_bias: npt.NDArray[np.float64] | None = None,
        col_bias: npt.NDArray[np.float64] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def similarity_weights(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        n_rows: int,
        n_cols: int,
        kind: int,
        co_rated: bool = False,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        global_mean: float = 0.0,
        row_bias: npt.NDArray[np.float64] | None = None,
        col_bias: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]: ...
    def sparse_topk_scores(
        self,
        a_indptr: npt.NDArray[np.int64],
        a_indices: npt.NDArray[np.int32],
        a_data: npt.NDArray[np.float32],
        a_rows: int,
        a_cols: int,
        b_indptr: npt.NDArray[np.int64],
        b_indices: npt.NDArray[np.int32],
        b_data: npt.NDArray[np.float32],
        b_cols: int,
        normalization: int = 0,
        k: int = 10,
        exclude_indptr: npt.NDArray[np.int64] | None = None,
        exclude_indices: npt.NDArray[np.int32] | None = None,
        candidates: npt.NDArray[np.int32] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def knn_predict(
        self,
        sim_indptr: npt.NDArray[np.int64],
        sim_indices: npt.NDArray[np.int32],
        sim_data: npt.NDArray[np.float32],
        n_x: int,
        yr_indptr: npt.NDArray[np.int64],
        yr_indices: npt.NDArray[np.int32],
        yr_data: npt.NDArray[np.float32],
        n_y: int,
        group_x: npt.NDArray[np.int32],
        group_ptr: npt.NDArray[np.int64],
        query_y: npt.NDArray[np.int32],
        kind: int = 0,
        k: int = 40,
        min_k: int = 1,
        global_mean: float = 0.0,
        x_mean: npt.NDArray[np.float64] | None = None,
        x_sigma: npt.NDArray[np.float64] | None = None,
        x_bias: npt.NDArray[np.float64] | None = None,
        y_bias: npt.NDArray[np.float64] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]: ...
    def baseline_als(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        t_indptr: npt.NDArray[np.int64],
        t_indices: npt.NDArray[np.int32],
        t_data: npt.NDArray[np.float32],
        n_users: int,
        n_items: int,
        global_mean: float,
        n_epochs: int = 10,
        reg_u: float = 15.0,
        reg_i: float = 10.0,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def baseline_sgd(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        n_users: int,
        n_items: int,
        global_mean: float,
        n_epochs: int = 20,
        reg: float = 0.02,
        learning_rate: float = 0.005,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...

neighbors: _Neighbors
