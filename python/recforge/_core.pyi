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

class SvdWorkspace:
    """Buffers of ``svd_epoch`` kept from one epoch to the next (one per concurrent fit)."""

    def __init__(self) -> None: ...

class SvdTrainer:
    """The rating triples of one SVD / PMF fit, checked and copied once, with the buffers of its
    epochs (ratings float32 or float64; the factors of ``epoch`` have the same dtype)."""

    def __init__(
        self,
        users: npt.NDArray[np.int32],
        items: npt.NDArray[np.int32],
        ratings: npt.NDArray[np.floating],
        n_users: int,
        n_items: int,
    ) -> None: ...
    @property
    def size(self) -> int: ...
    def epoch(
        self,
        user_factors: npt.NDArray[np.floating],
        item_factors: npt.NDArray[np.floating],
        user_bias: npt.NDArray[np.floating] | None = None,
        item_bias: npt.NDArray[np.floating] | None = None,
        global_mean: float = 0.0,
        *,
        lr: list[float],
        reg: list[float],
        shuffle: bool = True,
        seed: int = 0,
        n_threads: int = 1,
        min_block: int = 16384,
    ) -> tuple[float, int]: ...

class _FactorizationExplicit(ModuleType):
    # Every kernel exists for float32 and float64 arrays (all arrays of one call share the type).
    def svd_epoch(
        self,
        users: npt.NDArray[np.int32],
        items: npt.NDArray[np.int32],
        ratings: npt.NDArray[np.floating],
        user_factors: npt.NDArray[np.floating],
        item_factors: npt.NDArray[np.floating],
        user_bias: npt.NDArray[np.floating] | None = None,
        item_bias: npt.NDArray[np.floating] | None = None,
        global_mean: float = 0.0,
        *,
        lr: list[float],
        reg: list[float],
        shuffle: bool = True,
        seed: int = 0,
        n_threads: int = 1,
        min_block: int = 16384,
        workspace: SvdWorkspace | None = None,
    ) -> tuple[float, int]: ...
    def svd_epoch_order(
        self,
        users: npt.NDArray[np.int32],
        items: npt.NDArray[np.int32],
        n_users: int,
        n_items: int,
        k: int,
        itemsize: int = 4,
        shuffle: bool = True,
        seed: int = 0,
        n_threads: int = 1,
        min_block: int = 16384,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
    SvdWorkspace: type[SvdWorkspace]
    SvdTrainer: type[SvdTrainer]
    def svd_padded_stride(self, k: int) -> int: ...
    def fill_normal(self, out: npt.NDArray[np.floating], mean: float, std: float, seed: int) -> None: ...
    def svdpp_epoch(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        ratings: npt.NDArray[np.floating],
        user_order: npt.NDArray[np.int32],
        user_factors: npt.NDArray[np.floating],
        item_factors: npt.NDArray[np.floating],
        implicit_factors: npt.NDArray[np.floating],
        user_bias: npt.NDArray[np.floating],
        item_bias: npt.NDArray[np.floating],
        global_mean: float,
        *,
        lr: list[float],
        reg: list[float],
        shuffle: bool = True,
        seed: int = 0,
        n_threads: int = 1,
    ) -> tuple[float, int]: ...
    def nmf_epoch(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        ratings: npt.NDArray[np.floating],
        item_indptr: npt.NDArray[np.int64],
        item_users: npt.NDArray[np.int32],
        item_entry: npt.NDArray[np.int64],
        user_factors: npt.NDArray[np.floating],
        item_factors: npt.NDArray[np.floating],
        user_bias: npt.NDArray[np.floating] | None = None,
        item_bias: npt.NDArray[np.floating] | None = None,
        global_mean: float = 0.0,
        reg_pu: float = 0.06,
        reg_qi: float = 0.06,
        lr_bu: float = 0.005,
        lr_bi: float = 0.005,
        reg_bu: float = 0.02,
        reg_bi: float = 0.02,
        n_threads: int = 0,
    ) -> tuple[float, int]: ...
    def als_wr_sweep(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        ratings: npt.NDArray[np.floating],
        other: npt.NDArray[np.floating],
        other_bias: npt.NDArray[np.floating] | None = None,
        factors: npt.NDArray[np.floating] = ...,
        bias: npt.NDArray[np.floating] | None = None,
        reg: float = 0.05,
        global_mean: float = 0.0,
        n_threads: int = 0,
    ) -> tuple[float, int]: ...
    def svd_loss_grad(
        self,
        p: npt.NDArray[np.floating],
        q: npt.NDArray[np.floating],
        bu: float,
        bi: float,
        mu: float,
        rating: float,
        biased: bool,
        reg: list[float],
    ) -> tuple[float, npt.NDArray[np.floating], npt.NDArray[np.floating], float, float]: ...
    def svdpp_loss_grad(
        self,
        p: npt.NDArray[np.floating],
        q: npt.NDArray[np.floating],
        implicit_rows: npt.NDArray[np.floating],
        bu: float,
        bi: float,
        mu: float,
        rating: float,
        reg: list[float],
    ) -> tuple[
        float, npt.NDArray[np.floating], npt.NDArray[np.floating], float, float, npt.NDArray[np.floating]
    ]: ...
    def sgd_kernel_name(self) -> str: ...

factorization_explicit: _FactorizationExplicit

_Factors = npt.NDArray[np.float32] | npt.NDArray[np.float64]

class _FactorizationImplicit(ModuleType):
    def vector_kernel_name(self) -> str: ...
    def vector_kernel_name_f64(self) -> str: ...
    # The ALS and BPR kernels take float32 or float64 factors (one overload each; all the factor
    # arrays of a call share the dtype, and results have it); confidences are float32.
    def als_gram(self, factors: _Factors, n_threads: int = 0) -> _Factors: ...
    def als_solve(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        n_cols: int,
        X: _Factors,
        Y: _Factors,
        gram: _Factors | None = None,
        regularization: float = 0.01,
        unobserved_weight: float = 1.0,
        reg_exponent: float = 0.0,
        solver: int = 0,
        cg_steps: int = 3,
        n_threads: int = 0,
    ) -> None: ...
    def als_loss(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        n_cols: int,
        X: _Factors,
        Y: _Factors,
        gram: _Factors | None = None,
        regularization: float = 0.01,
        unobserved_weight: float = 1.0,
        reg_exponent: float = 0.0,
        n_threads: int = 0,
    ) -> float: ...
    def als_explain(
        self,
        items: npt.NDArray[np.int32],
        confidences: npt.NDArray[np.float32],
        Y: _Factors,
        gram: _Factors | None = None,
        target: int = 0,
        regularization: float = 0.01,
        unobserved_weight: float = 1.0,
        reg_exponent: float = 0.0,
    ) -> tuple[_Factors, float]: ...
    def bpr_epoch(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        n_items: int,
        user_factors: _Factors,
        item_factors: _Factors,
        bias: _Factors | None = None,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        bias_regularization: float = 0.01,
        verify_negatives: bool = True,
        negatives: int = 0,
        negative_draws: int = 64,
        seed: int = 0,
        epoch: int = 0,
        n_threads: int = 0,
        row_of: npt.NDArray[np.int32] | None = None,
        filter: npt.NDArray[np.uint64] | None = None,
        loss: int = 0,
    ) -> dict[str, float]: ...
    def bpr_prepare(
        self, indptr: npt.NDArray[np.int64], indices: npt.NDArray[np.int32], n_items: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint64]]: ...
    def bpr_triple_loss(
        self,
        u: npt.NDArray[np.float32],
        qi: npt.NDArray[np.float32],
        qj: npt.NDArray[np.float32],
        bi: float = 0.0,
        bj: float = 0.0,
        regularization: float = 0.01,
        bias_regularization: float = 0.01,
        loss: int = 0,
    ) -> tuple[
        float, npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], float, float
    ]: ...
    def bpr_fold_in(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        user_factors: _Factors,
        item_factors: _Factors,
        bias: _Factors | None = None,
        epochs: int = 10,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        verify_negatives: bool = True,
        seed: int = 0,
        n_threads: int = 0,
        loss: int = 0,
    ) -> None: ...
    def ease_fit(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        n_users: int,
        n_items: int,
        lambda_: float = 500.0,
        double_precision: bool = False,
        n_threads: int = 0,
    ) -> npt.NDArray[np.float32]: ...
    def ease_scores(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        B: npt.NDArray[np.float32],
        n_threads: int = 0,
    ) -> npt.NDArray[np.float32]: ...

factorization_implicit: _FactorizationImplicit

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]
_I32 = npt.NDArray[np.int32]
_I64 = npt.NDArray[np.int64]
_U8 = npt.NDArray[np.uint8]

class _Ranking(ModuleType):
    OBJECTIVES: tuple[str, ...]
    def find_bins(
        self,
        X: _F32,
        max_bin: int = 255,
        min_data_in_bin: int = 3,
        sample_rows: int = 200000,
        n_threads: int = 0,
        min_split_rows: int = 0,
    ) -> tuple[_F32, _I64, _U8]: ...
    def apply_bins(self, X: _F32, upper: _F32, offsets: _I64, has_missing: _U8, n_threads: int = 0) -> _U8: ...
    def gradients(
        self,
        objective: int,
        scores: _F64,
        labels: _F32,
        group_offsets: _I64,
        out: _F32,
        sigmoid: float = 1.0,
        label_gain: _F64 | None = None,
        truncation_level: int = 30,
        normalize: bool = True,
        seed: int = 0,
        iteration: int = 0,
        n_threads: int = 0,
    ) -> None: ...
    def objective_loss(
        self,
        objective: int,
        scores: _F64,
        labels: _F32,
        group_offsets: _I64,
        sigmoid: float = 1.0,
        label_gain: _F64 | None = None,
        truncation_level: int = 30,
        normalize: bool = True,
        seed: int = 0,
        iteration: int = 0,
        fixed_weights_from: _F64 | None = None,
    ) -> float: ...
    def grow_tree(
        self,
        bins: _U8,
        upper: _F32,
        offsets: _I64,
        has_missing: _U8,
        grad_hess: _F32,
        rows: _I32 | None = None,
        feature_mask: _U8 | None = None,
        scores: _F64 | None = None,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_data_in_leaf: int = 20,
        min_sum_hessian: float = 1e-3,
        lambda_l1: float = 0.0,
        lambda_l2: float = 0.0,
        min_gain_to_split: float = 0.0,
        learning_rate: float = 0.1,
        counts_from_hessian: bool = True,
        n_threads: int = 0,
    ) -> dict[str, np.ndarray]: ...
    def add_tree_binned(
        self,
        tree: dict[str, np.ndarray],
        bins: _U8,
        upper: _F32,
        offsets: _I64,
        has_missing: _U8,
        rows: _I32 | None,
        scores: _F64,
        n_threads: int = 0,
    ) -> None: ...
    def predict(
        self,
        node_offsets: _I64,
        leaf_offsets: _I64,
        feature: _I32,
        threshold: _F32,
        default_left: _U8,
        left: _I32,
        right: _I32,
        leaf_value: _F64,
        X: _F32,
        n_use: int = -1,
        init: float = 0.0,
        check: bool = True,
        n_threads: int = 0,
    ) -> _F64: ...
    def predict_leaf(
        self,
        node_offsets: _I64,
        leaf_offsets: _I64,
        feature: _I32,
        threshold: _F32,
        default_left: _U8,
        left: _I32,
        right: _I32,
        leaf_value: _F64,
        X: _F32,
        n_use: int = -1,
        n_threads: int = 0,
    ) -> _I32: ...
    def rank_metric(
        self,
        metric: int,
        scores: _F64,
        labels: _F32,
        group_offsets: _I64,
        k: int = 10,
        empty_score: float = 1.0,
        n_threads: int = 0,
    ) -> float: ...
    def linear_epoch(
        self,
        X: _F32,
        y: _F32,
        group_offsets: _I64,
        w: _F64,
        loss: int = 1,
        learning_rate: float = 0.05,
        l2: float = 1e-4,
        seed: int = 0,
        epoch: int = 0,
    ) -> float: ...
    def linear_query_loss(self, loss: int, scores: _F64, y: _F32) -> tuple[float, _F64]: ...

ranking: _Ranking

class _Bandits(ModuleType):
    def mab_probabilities(
        self,
        counts: npt.NDArray[np.float64],
        sums: npt.NDArray[np.float64],
        mask: npt.NDArray[np.uint8] | None = None,
        n_rows: int = 1,
        policy: int = 0,
        epsilon: float = 0.1,
        alpha: float = 1.0,
        prior_a: float = 1.0,
        prior_b: float = 1.0,
        prior_mean: float = 0.0,
        prior_precision: float = 1.0,
        noise_sd: float = 1.0,
        temperature: float = 1.0,
        initial_mean: float = 0.0,
        n_draws: int = 1000,
        seed: int = 0,
        n_threads: int = 0,
    ) -> npt.NDArray[np.float64]: ...
    def mab_select(
        self,
        counts: npt.NDArray[np.float64],
        sums: npt.NDArray[np.float64],
        mask: npt.NDArray[np.uint8] | None = None,
        n_rows: int = 1,
        k: int = 1,
        with_propensities: bool = True,
        policy: int = 0,
        epsilon: float = 0.1,
        alpha: float = 1.0,
        prior_a: float = 1.0,
        prior_b: float = 1.0,
        prior_mean: float = 0.0,
        prior_precision: float = 1.0,
        noise_sd: float = 1.0,
        temperature: float = 1.0,
        initial_mean: float = 0.0,
        n_draws: int = 1000,
        seed: int = 0,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]: ...
    def mab_update(
        self,
        counts: npt.NDArray[np.float64],
        sums: npt.NDArray[np.float64],
        arms: npt.NDArray[np.int32],
        rewards: npt.NDArray[np.float64],
    ) -> None: ...
    def linear_scores(
        self,
        A_inv: npt.NDArray[np.float64],
        b: npt.NDArray[np.float64],
        arm_features: npt.NDArray[np.float64] | None = None,
        A0: npt.NDArray[np.float64] | None = None,
        b0: npt.NDArray[np.float64] | None = None,
        B: npt.NDArray[np.float64] | None = None,
        contexts: npt.NDArray[np.float64] = ...,
        mask: npt.NDArray[np.uint8] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def linear_probabilities(
        self,
        A_inv: npt.NDArray[np.float64],
        b: npt.NDArray[np.float64],
        arm_features: npt.NDArray[np.float64] | None = None,
        A0: npt.NDArray[np.float64] | None = None,
        b0: npt.NDArray[np.float64] | None = None,
        B: npt.NDArray[np.float64] | None = None,
        contexts: npt.NDArray[np.float64] = ...,
        mask: npt.NDArray[np.uint8] | None = None,
        policy: int = 0,
        alpha: float = 1.0,
        n_draws: int = 1000,
        seed: int = 0,
        n_threads: int = 0,
    ) -> npt.NDArray[np.float64]: ...
    def linear_select(
        self,
        A_inv: npt.NDArray[np.float64],
        b: npt.NDArray[np.float64],
        arm_features: npt.NDArray[np.float64] | None = None,
        A0: npt.NDArray[np.float64] | None = None,
        b0: npt.NDArray[np.float64] | None = None,
        B: npt.NDArray[np.float64] | None = None,
        contexts: npt.NDArray[np.float64] = ...,
        mask: npt.NDArray[np.uint8] | None = None,
        k: int = 1,
        with_propensities: bool = True,
        policy: int = 0,
        alpha: float = 1.0,
        n_draws: int = 1000,
        seed: int = 0,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]: ...
    def linear_update(
        self,
        A_inv: npt.NDArray[np.float64],
        b: npt.NDArray[np.float64],
        arm_features: npt.NDArray[np.float64] | None = None,
        A0: npt.NDArray[np.float64] | None = None,
        b0: npt.NDArray[np.float64] | None = None,
        B: npt.NDArray[np.float64] | None = None,
        arms: npt.NDArray[np.int32] = ...,
        rewards: npt.NDArray[np.float64] = ...,
        contexts: npt.NDArray[np.float64] = ...,
    ) -> None: ...
    def ope_estimate(
        self,
        estimator: int,
        reward: npt.NDArray[np.float64],
        pscore: npt.NDArray[np.float64] | None = None,
        eval_prob: npt.NDArray[np.float64] | None = None,
        q_logged: npt.NDArray[np.float64] | None = None,
        q_policy: npt.NDArray[np.float64] | None = None,
        param: float = ...,
    ) -> float: ...
    def ope_bootstrap(
        self,
        estimator: int,
        reward: npt.NDArray[np.float64],
        pscore: npt.NDArray[np.float64] | None = None,
        eval_prob: npt.NDArray[np.float64] | None = None,
        q_logged: npt.NDArray[np.float64] | None = None,
        q_policy: npt.NDArray[np.float64] | None = None,
        param: float = ...,
        n_bootstrap: int = 1000,
        seed: int = 0,
        n_threads: int = 0,
    ) -> npt.NDArray[np.float64]: ...

bandits: _Bandits
class _Content(ModuleType):
    def document_frequency(
        self, indptr: npt.NDArray[np.int64], indices: npt.NDArray[np.int32], data: npt.NDArray[np.float32],
        n_terms: int,
    ) -> npt.NDArray[np.int64]: ...
    def idf(
        self, df: npt.NDArray[np.int64], n_docs: int, weighting: int = 0, smooth_idf: bool = True
    ) -> npt.NDArray[np.float32]: ...
    def weight_terms(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        idf: npt.NDArray[np.float32],
        weighting: int = 0,
        sublinear_tf: bool = False,
        k1: float = 1.2,
        b: float = 0.75,
        normalize: bool = True,
        avg_doc_len: float = 0.0,
        n_threads: int = 0,
    ) -> npt.NDArray[np.float32]: ...
    def weighted_profiles(
        self,
        w_indptr: npt.NDArray[np.int64],
        w_indices: npt.NDArray[np.int32],
        w_data: npt.NDArray[np.float32],
        x_indptr: npt.NDArray[np.int64],
        x_indices: npt.NDArray[np.int32],
        x_data: npt.NDArray[np.float32],
        n_features: int,
        average: bool = True,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def cosine_scores(
        self,
        q_indptr: npt.NDArray[np.int64],
        q_indices: npt.NDArray[np.int32],
        q_data: npt.NDArray[np.float32],
        x_indptr: npt.NDArray[np.int64],
        x_indices: npt.NDArray[np.int32],
        x_data: npt.NDArray[np.float32],
        n_features: int,
        rows: npt.NDArray[np.int32] | None = None,
        n_threads: int = 0,
    ) -> npt.NDArray[np.float32]: ...

content: _Content

class _Hybrid(ModuleType):
    def epoch(
        self,
        r_indptr: npt.NDArray[np.int64],
        r_indices: npt.NDArray[np.int32],
        r_data: npt.NDArray[np.float32],
        u_indptr: npt.NDArray[np.int64],
        u_indices: npt.NDArray[np.int32],
        u_data: npt.NDArray[np.float32],
        i_indptr: npt.NDArray[np.int64],
        i_indices: npt.NDArray[np.int32],
        i_data: npt.NDArray[np.float32],
        user_embeddings: npt.NDArray[np.float32],
        user_biases: npt.NDArray[np.float32],
        user_embedding_grad: npt.NDArray[np.float32],
        user_bias_grad: npt.NDArray[np.float32],
        user_embedding_step: npt.NDArray[np.float32] | None,
        user_bias_step: npt.NDArray[np.float32] | None,
        item_embeddings: npt.NDArray[np.float32],
        item_biases: npt.NDArray[np.float32],
        item_embedding_grad: npt.NDArray[np.float32],
        item_bias_grad: npt.NDArray[np.float32],
        item_embedding_step: npt.NDArray[np.float32] | None,
        item_bias_step: npt.NDArray[np.float32] | None,
        negatives: npt.NDArray[np.int32] | None = None,
        loss: int = 2,
        schedule: int = 0,
        learning_rate: float = 0.05,
        rho: float = 0.95,
        epsilon: float = 1e-6,
        user_alpha: float = 0.0,
        item_alpha: float = 0.0,
        max_sampled: int = 10,
        k: int = 5,
        n: int = 10,
        seed: int = 0,
        epoch: int = 0,
        n_threads: int = 0,
    ) -> dict[str, float]: ...
    def representations(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        embeddings: npt.NDArray[np.float32],
        biases: npt.NDArray[np.float32],
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def example_loss(
        self,
        loss: int,
        user: npt.NDArray[np.float32],
        pos: npt.NDArray[np.float32],
        neg: npt.NDArray[np.float32] | None = None,
        label: float = 1.0,
        warp_weight: float = 1.0,
    ) -> tuple[float, npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...

hybrid: _Hybrid
