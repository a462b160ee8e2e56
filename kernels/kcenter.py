"""k-center greedy (Sener & Savarese 2018) over an embedding matrix, plain, weighted or scored.

Each greedy step adds the row farthest from the selected set, then a pass over the matrix lowers
every row's distance to that set. One pass per centre is memory-bound, so the pass is fused
(distance, min-update and the block's best rows in one read of each row) and parallel over row
blocks; float16 matrices are read as half floats and widened in registers, halving the bytes.

The pass runs on plain threads (the caller's and ``numba.get_num_threads() - 1`` pool threads, the
kernel releasing the GIL) that claim row blocks from a shared atomic counter. On a machine shared
with other jobs both choices matter: a fixed share per thread would make every step wait for a
descheduled thread's whole share, and OpenMP's spinning barriers (Numba's ``prange``) burn core
time the other threads need. Measured on the 2-core machine under load, a ``prange`` read probe
got about half the bandwidth of two plain threads reading the same matrix, and this pass ran
10-15% faster on threads than on ``prange``.

Rows whose nearest centre ``c`` is already far from the new centre ``q`` are skipped without being
read: by the triangle inequality ``dist(x, q) >= dist(c, q) - dist(x, c)``, so when
``dist(c, q) >= 2 * dist(x, c)`` the new centre cannot be closer. On clustered embeddings this skips
most rows once a few centres exist; on isotropic noise it skips nothing and costs nothing. The
test carries a small slack so float32 rounding never skips a row that would have moved.

One pass can add several centres. The pass also lists the highest-scoring rows; the next centre
is the list's leader, and the rest (the pool) are brought up to date with each new centre at the
cost of a few dot products. Every row outside the list scores at most the list's last value and
scores only fall, so while the best pool row still beats that value it is exactly the next greedy
choice and joins the chain before any pass. The pass then adds the whole chain while reading each
row once, taking rows in small tiles centre by centre so the centre and the tile stay in L1. On
isotropic noise a new centre rarely moves the runners-up and chains run long: about 20 passes
instead of 500 for K=500. The selection equals the one-centre-per-pass greedy's (up to float32
rounding in exact ties).

Distances: ``"l2"`` is the Euclidean distance; ``"cosine"`` is ``1 - cos(x, y)``. Internally both
are tracked as squared metric distances (cosine as the squared chord ``2 - 2 cos``, a true metric
with the same ordering), which is what makes the skip test valid for cosine too.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

METRICS = ("cosine", "l2")

# Skip a row only when gap^2 > SKIP_FACTOR * r^2 + SKIP_SLACK (4 = the exact triangle bound).
SKIP_FACTOR = np.float32(4.004)
SKIP_SLACK = np.float32(1e-5)

# Reassociation lets the dot products vectorise; no "nnan"/"ninf", the kernels rely on inf and NaN tests.
FAST_MATH = {"reassoc", "contract", "nsz", "arcp"}

# Rows per parallel block: large enough to amortise scheduling, small enough to balance 2-64 threads.
BLOCK_ROWS = 2048

# Centres one pass may add (see the module docstring), and candidate rows listed per centre.
MAX_CENTRES_PER_PASS = 32
CANDIDATES_PER_CENTRE = 2
# Rows a pass takes together, centre by centre: a tile and a centre stay in L1 together.
TILE_ROWS = 8

MODE_PLAIN = 0
MODE_WEIGHTED = 1
MODE_SCORED = 2


@intrinsic
def _to_float32(typingctx, value):
    """Widen a float16 (stored as its uint16 bits) or pass a float32 through, in registers."""
    if value == types.uint16:

        def codegen(context, builder, signature, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return types.float32(types.uint16), codegen
    if value == types.float32:

        def codegen(context, builder, signature, args):
            return args[0]

        return types.float32(types.float32), codegen
    return None


@intrinsic
def _claim(typingctx, counter):
    """Atomically add 1 to ``counter[0]`` (int64) and return its previous value."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", array.data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(counter), codegen


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, parallel=True)
def _row_norms(matrix):
    n, d = matrix.shape
    norms = np.empty(n, dtype=np.float32)
    for i in prange(n):
        total = np.float32(0.0)
        for j in range(d):
            value = _to_float32(matrix[i, j])
            total += value * value
        norms[i] = np.sqrt(total)
    return norms


def row_norms(matrix: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Euclidean norm of each row, the first non-finite row and the first all-zero row.

    Parameters
    ----------
    matrix : ndarray, shape (n, d), float32, or uint16 holding float16 bits

    Returns
    -------
    norms : ndarray of float32, shape (n,)
    first_bad : int
        First row holding a NaN or inf (or whose squared norm overflows float32); -1 if none.
    first_zero : int
        First all-zero row; -1 if none.

    Complexity: one parallel pass, O(n * d).

    Example
    -------
    >>> row_norms(np.array([[3, 4], [0, 0]], dtype=np.float32))[0].tolist(), row_norms(np.zeros((1, 2), np.float32))[2]
    ([5.0, 0.0], 0)
    """
    norms = _row_norms(matrix)
    # NaN and inf propagate through the sum of squares, so the norm alone tells a bad row.
    bad = np.flatnonzero(~np.isfinite(norms))
    zero = np.flatnonzero(norms == 0)
    return norms, int(bad[0]) if bad.size else -1, int(zero[0]) if zero.size else -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _load_centre(matrix, row, inv_norm, out):
    for j in range(matrix.shape[1]):
        out[j] = _to_float32(matrix[row, j]) * inv_norm


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, _nrt=False)
def _gaps_to(centres, slot, cosine, gaps):
    """Squared metric distance from centre ``slot`` to every earlier centre."""
    for previous in range(slot):
        total = np.float32(0.0)
        if cosine:
            for j in range(centres.shape[1]):
                total += centres[previous, j] * centres[slot, j]
            gaps[previous] = max(np.float32(2.0) - np.float32(2.0) * total, np.float32(0.0))
        else:
            for j in range(centres.shape[1]):
                diff = centres[previous, j] - centres[slot, j]
                total += diff * diff
            gaps[previous] = total


@numba.njit(cache=True, nogil=True, _nrt=False)
def _distance_from_squared(squared, cosine):
    if cosine:
        return squared * 0.5
    return np.sqrt(squared)


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, _nrt=False)
def _squared_distance(matrix, row, centres, slot, cosine, inv_norm):
    """Squared metric distance from ``matrix[row]`` to ``centres[slot]`` (the chord for cosine).

    Indexes the 2-D arrays rather than taking row views: a view's reference count is one atomic
    cache line that every thread would bounce on each call.
    """
    total = np.float32(0.0)
    if cosine:
        for j in range(matrix.shape[1]):
            total += _to_float32(matrix[row, j]) * centres[slot, j]
        return max(np.float32(2.0) - np.float32(2.0) * total * inv_norm, np.float32(0.0))
    for j in range(matrix.shape[1]):
        diff = _to_float32(matrix[row, j]) - centres[slot, j]
        total += diff * diff
    return total


@numba.njit(cache=True, nogil=True, _nrt=False)
def _score(current, weight, mode, cosine):
    """The score reported for a selected row: its (weighted) distance to the set before it."""
    value = np.float64(_distance_from_squared(current, cosine))
    if mode == MODE_WEIGHTED:
        value *= np.float64(weight)
    return value


@numba.njit(cache=True, nogil=True, _nrt=False)
def _row_value(current, weight, mode, cosine):
    """What the greedy step maximises for one row (plain: the squared distance, same order)."""
    return np.float64(current) if mode == MODE_PLAIN else _score(current, weight, mode, cosine)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _ranks_before(value, row, other_value, other_row):
    """The list order: value descending, then row id ascending."""
    return value > other_value or (value == other_value and row < other_row)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _offer(top_rows, top_values, block, listed, value, row):
    """Insert ``row`` into list ``block`` if it ranks; returns the list's new length."""
    width = top_rows.shape[1]
    if listed == width and not _ranks_before(value, row, top_values[block, width - 1], top_rows[block, width - 1]):
        return listed
    position = min(listed, width - 1)
    while position > 0 and _ranks_before(value, row, top_values[block, position - 1], top_rows[block, position - 1]):
        top_values[block, position] = top_values[block, position - 1]
        top_rows[block, position] = top_rows[block, position - 1]
        position -= 1
    top_values[block, position] = value
    top_rows[block, position] = row
    return min(listed + 1, width)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _close_list(top_rows, block, listed):
    for position in range(listed, top_rows.shape[1]):
        top_rows[block, position] = -1
    return listed


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, _nrt=False)
def _update_block(matrix, inv_norms, cosine, centres, first_slot, n_new, gaps, nearest, squared, selected, weights, mode, prune,
                  block, top_rows, top_values, current, owner, read):
    """Fused pass over one row block for ``n_new`` new centres; returns (rows listed, rows read).

    Each row is read once however many centres the pass adds. ``top_rows[block]`` receives the
    block's highest-valued unselected rows, by value descending then row id ascending.
    ``current``, ``owner`` and ``read`` are the thread's scratch, ``TILE_ROWS`` long.
    """
    n = matrix.shape[0]
    listed = 0
    streamed = 0
    for tile in range(block * BLOCK_ROWS, min(n, (block + 1) * BLOCK_ROWS), TILE_ROWS):
        size = min(TILE_ROWS, n - tile)
        for t in range(size):
            current[t] = squared[tile + t]
            owner[t] = nearest[tile + t]
            read[t] = False
        # Centre by centre over the tile: the centre stays in L1 while the tile's rows reuse it.
        for centre in range(n_new):
            for t in range(size):
                i = tile + t
                if selected[i] or (prune and owner[t] >= 0 and gaps[centre, owner[t]] > SKIP_FACTOR * current[t] + SKIP_SLACK):
                    continue
                read[t] = True
                candidate = _squared_distance(matrix, i, centres, first_slot + centre, cosine, inv_norms[i])
                if candidate < current[t]:
                    current[t] = candidate
                    owner[t] = first_slot + centre
        for t in range(size):
            i = tile + t
            if selected[i]:
                continue
            if read[t]:
                streamed += 1
                if owner[t] != nearest[i]:
                    squared[i] = current[t]
                    nearest[i] = owner[t]
            listed = _offer(top_rows, top_values, block, listed, _row_value(current[t], weights[i], mode, cosine), i)
    return _close_list(top_rows, block, listed), streamed


@numba.njit(cache=True, nogil=True)
def _update_worker(matrix, inv_norms, cosine, centres, first_slot, n_new, gaps, nearest, squared, selected, weights, mode, prune,
                   top_rows, top_values, block_streamed, next_block):
    """One thread's share of a pass: claims row blocks until none is left."""
    n_blocks = top_rows.shape[0]
    current = np.empty(TILE_ROWS, dtype=np.float32)
    owner = np.empty(TILE_ROWS, dtype=np.int64)
    read = np.empty(TILE_ROWS, dtype=np.bool_)
    block = _claim(next_block)
    while block < n_blocks:
        _, block_streamed[block] = _update_block(matrix, inv_norms, cosine, centres, first_slot, n_new, gaps, nearest, squared,
                                                 selected, weights, mode, prune, block, top_rows, top_values, current, owner, read)
        block = _claim(next_block)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _merge_top(top_rows, top_values, rows, values):
    """The best of all blocks' lists into the single list ``rows[0]``, ``values[0]``; returns how many."""
    listed = 0
    for block in range(top_rows.shape[0]):
        for position in range(top_rows.shape[1]):
            if top_rows[block, position] < 0:
                break
            listed = _offer(rows, values, 0, listed, top_values[block, position], top_rows[block, position])
    return listed


@numba.njit(cache=True, nogil=True, _nrt=False)
def _add_centre(matrix, inv_norms, cosine, centres, gaps, first_slot, centre, row, squared, selected):
    selected[row] = True
    squared[row] = 0.0
    _load_centre(matrix, row, inv_norms[row] if cosine else np.float32(1.0), centres[first_slot + centre])
    _gaps_to(centres, first_slot + centre, cosine, gaps[centre])


@numba.njit(cache=True, nogil=True, _nrt=False)
def _extend_chain(matrix, inv_norms, cosine, centres, gaps, first_slot, pool, threshold, nearest, squared, selected, weights, mode,
                  limit, chain, chain_scores):
    """Select further centres before the pass that adds ``chain[0]``, while that is provably exact.

    ``pool`` holds the rows of the last pass's top list after its leader, ``threshold`` the least
    value on that list (``-inf`` when it held every unselected row): no row outside the pool can
    score higher. Pool rows are brought up to date with each new centre; while the best of them
    beats ``threshold`` it is the exact next greedy choice, so it joins the chain. Returns the
    chain's length (at most ``limit``); every chained centre is loaded and marked selected.
    """
    length = 1
    while length < limit:
        newest = first_slot + length - 1
        best = -1
        best_value = -np.inf
        for position in range(pool.shape[0]):
            row = pool[position]
            if row < 0 or selected[row]:
                continue
            candidate = _squared_distance(matrix, row, centres, newest, cosine, inv_norms[row])
            if candidate < squared[row]:
                squared[row] = candidate
                nearest[row] = newest
            value = _row_value(squared[row], weights[row], mode, cosine)
            if value > best_value or (value == best_value and row < best):
                best_value = value
                best = row
        if best < 0 or not best_value > threshold:
            break
        chain[length] = best
        chain_scores[length] = _score(squared[best], weights[best], mode, cosine)
        _add_centre(matrix, inv_norms, cosine, centres, gaps, first_slot, length, best, squared, selected)
        length += 1
    return length


@numba.njit(cache=True, nogil=True)
def _pick_scored(squared, selected, base, beta, cosine):
    """argmax over unselected rows of ``base + beta * dist / max dist`` (dist = inf counts as 1)."""
    n = squared.shape[0]
    largest = 0.0
    for i in range(n):
        if not selected[i] and squared[i] > largest:
            largest = squared[i]
    scale = _distance_from_squared(largest, cosine)
    best = -1
    best_value = -np.inf
    for i in range(n):
        if selected[i]:
            continue
        if np.isinf(scale):
            term = 1.0 if np.isinf(squared[i]) else 0.0
        elif scale > 0.0:
            term = _distance_from_squared(squared[i], cosine) / scale
        else:
            term = 0.0
        value = base[i] + beta * term
        if value > best_value:
            best_value = value
            best = i
    return best, best_value


def greedy_select(
    matrix: np.ndarray,
    k: int,
    *,
    metric: str = "cosine",
    norms: np.ndarray | None = None,
    start: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    base: np.ndarray | None = None,
    beta: float = 1.0,
    prune: bool = True,
    max_centres_per_pass: int = MAX_CENTRES_PER_PASS,
    on_step=None,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy farthest-point selection: plain, weighted or scored k-center.

    The score of an unselected row ``i`` given the selected set ``S`` is, with
    ``d(i) = min_{s in S} dist(x_i, x_s)`` (``+inf`` while ``S`` is empty):

    - plain (no ``weights``, no ``base``): ``d(i)``;
    - weighted: ``weights[i] * d(i)``;
    - scored: ``base[i] + beta * d(i) / max_{j not in S} d(j)`` (the diversity term lies in
      [0, 1]; while ``S`` is empty it is 1 for every row).

    Each step selects the highest-scoring unselected row (ties: lowest row id), adds it to ``S`` and
    updates ``d`` in one fused pass over the matrix.

    Parameters
    ----------
    matrix : ndarray, shape (n, d), float32 or float16 (C-contiguous)
        Embeddings. float16 is read as half floats and widened per element (no float32 copy).
    k : int
        Number of rows to select, ``1 <= k <= n - len(start)``.
    metric : {"cosine", "l2"}
        ``1 - cos`` or Euclidean distance.
    norms : ndarray of float32, shape (n,), optional
        Row norms from :func:`row_norms` (computed when omitted; used by ``"cosine"``).
    start : ndarray of int64, shape (s,), optional
        Rows already selected: they count as centres and are never returned.
    weights : ndarray of float32, shape (n,), optional
        Non-negative weights of the weighted variant.
    base : ndarray of float64, shape (n,), optional
        Per-row score added to the normalised diversity term (scored variant).
    beta : float
        Weight of the diversity term in the scored variant.
    prune : bool
        Skip rows the triangle inequality proves unaffected (same result, fewer bytes read).
    max_centres_per_pass : int
        Most centres one pass over the matrix may add (plain and weighted variants; the scored
        variant adds one, its normalised term has no such bound). The selection is the same for
        every value; 1 streams the matrix once per centre.
    on_step : callable, optional
        Called with no argument after each selected row (progress reporting).
    stats : dict, optional
        Receives ``"rows_streamed"``: matrix rows read by all passes (a row read once for several
        chained centres counts once, rows the skip test spares are not counted, nor is the one
        row-norm pass made when ``norms`` is omitted) and ``"passes"``: passes over the matrix.

    Returns
    -------
    order : ndarray of int64, shape (k,)
        Selected rows in selection order.
    score : ndarray of float64, shape (k,)
        The score each row had when selected (plain: its distance to the selected set, ``inf``
        for the first row when ``start`` is empty).

    Complexity: O((s + k) * n * d) arithmetic in the worst case, in at most ``s + k`` passes over the
    matrix (fewer when centres chain); O(n + (s + k) * d) extra memory.

    Example
    -------
    >>> x = np.array([[0, 0], [0, 1], [5, 5], [0, 0.1]], dtype=np.float32)
    >>> greedy_select(x, 2, metric="l2")[0].tolist()
    [0, 2]
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if matrix.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D matrix, got shape {matrix.shape}")
    if matrix.dtype == np.float16:
        stored = np.ascontiguousarray(matrix).view(np.uint16)
    elif matrix.dtype == np.float32:
        stored = np.ascontiguousarray(matrix)
    else:
        raise ValueError(f"embeddings must be float32 or float16, got {matrix.dtype}")
    n, d = stored.shape
    start = np.unique(np.asarray(start if start is not None else [], dtype=np.int64))
    if start.size and (start[0] < 0 or start[-1] >= n):
        raise ValueError(f"start rows must lie in [0, {n}), got {start[0]}..{start[-1]}")
    if max_centres_per_pass < 1:
        raise ValueError(f"max_centres_per_pass must be at least 1, got {max_centres_per_pass}")
    if not 1 <= k <= n - start.size:
        raise ValueError(f"k must be between 1 and {n - start.size} (rows not already selected), got {k}")
    cosine = metric == "cosine"
    if norms is None:
        norms = row_norms(stored)[0]
    inv_norms = np.divide(1.0, norms, out=np.zeros(n, dtype=np.float32), where=norms > 0).astype(np.float32)

    if base is not None:
        mode, base = MODE_SCORED, np.ascontiguousarray(base, dtype=np.float64)
    elif weights is not None:
        mode = MODE_WEIGHTED
    else:
        mode = MODE_PLAIN
    weights = np.ascontiguousarray(weights if weights is not None else np.ones(n), dtype=np.float32)

    per_pass = 1 if mode == MODE_SCORED else max_centres_per_pass
    # The pass lists each block's best rows: the next centre leads, the rest feed the chain.
    width = 1 if per_pass == 1 else CANDIDATES_PER_CENTRE * per_pass
    slots = start.size + k
    centres = np.zeros((slots, d), dtype=np.float32)
    gaps = np.zeros((per_pass, slots), dtype=np.float32)
    nearest = np.full(n, -1, dtype=np.int64)
    squared = np.full(n, np.inf, dtype=np.float32)
    selected = np.zeros(n, dtype=np.bool_)
    n_blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    top_rows = np.empty((n_blocks, width), dtype=np.int64)
    top_values = np.empty((n_blocks, width), dtype=np.float64)
    leaders = np.empty((1, width), dtype=np.int64)
    leader_values = np.empty((1, width), dtype=np.float64)
    block_streamed = np.empty(n_blocks, dtype=np.int64)
    next_block = np.zeros(1, dtype=np.int64)
    chain = np.empty(per_pass, dtype=np.int64)
    chain_scores = np.empty(per_pass, dtype=np.float64)
    streamed = 0
    passes = 0
    order = np.empty(k, dtype=np.int64)
    score = np.empty(k, dtype=np.float64)

    n_helpers = numba.get_num_threads() - 1
    helpers = ThreadPoolExecutor(n_helpers) if n_helpers > 0 else None

    def run_pass(first_slot: int, n_new: int) -> int:
        """Stream the matrix once for centres ``first_slot .. first_slot + n_new - 1``; returns rows listed."""
        nonlocal streamed, passes
        passes += 1
        next_block[0] = 0
        arguments = (stored, inv_norms, cosine, centres, first_slot, n_new, gaps, nearest, squared, selected, weights, mode, prune,
                     top_rows, top_values, block_streamed, next_block)
        shares = [helpers.submit(_update_worker, *arguments) for _ in range(n_helpers)] if helpers else []
        _update_worker(*arguments)
        for share in shares:
            share.result()
        streamed += int(block_streamed.sum())
        return _merge_top(top_rows, top_values, leaders, leader_values)

    try:
        listed = 0
        for first in range(0, start.size, per_pass):
            chunk = start[first:first + per_pass]
            for centre, row in enumerate(chunk):
                _add_centre(stored, inv_norms, cosine, centres, gaps, first, centre, int(row), squared, selected)
            listed = run_pass(first, chunk.size)
        if start.size:
            candidate = int(leaders[0, 0])
        else:
            candidate = int(np.argmax(weights)) if mode == MODE_WEIGHTED else 0
        step = 0
        slot = start.size
        while True:
            if mode == MODE_SCORED:
                candidate, value = _pick_scored(squared, selected, base, beta, cosine)
            else:
                value = _score(squared[candidate], weights[candidate], mode, cosine)
            order[step] = candidate
            score[step] = value
            step += 1
            if on_step is not None:
                on_step()
            if step == k:
                break
            chain[0] = candidate
            _add_centre(stored, inv_norms, cosine, centres, gaps, slot, 0, int(candidate), squared, selected)
            length = 1
            if per_pass > 1 and listed > 1:
                threshold = leader_values[0, width - 1] if listed == width else -np.inf
                length = _extend_chain(stored, inv_norms, cosine, centres, gaps, slot, leaders[0, 1:listed], threshold, nearest, squared,
                                       selected, weights, mode, min(per_pass, k - step + 1), chain, chain_scores)
                for position in range(1, length):
                    order[step] = chain[position]
                    score[step] = chain_scores[position]
                    step += 1
                    if on_step is not None:
                        on_step()
                if step == k:
                    break
            listed = run_pass(slot, length)
            slot += length
            candidate = int(leaders[0, 0])
    finally:
        if helpers:
            helpers.shutdown()
    if stats is not None:
        stats["rows_streamed"] = streamed
        stats["passes"] = passes
    return order, score


def kcenter_greedy(
    matrix: np.ndarray,
    k: int,
    *,
    metric: str = "cosine",
    start: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    prune: bool = True,
    max_centres_per_pass: int = MAX_CENTRES_PER_PASS,
    on_step=None,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k-center greedy: ``k`` rows, each the farthest (optionally weighted) from those before it.

    Plain: select ``argmax_i min_{s in S} dist(x_i, x_s)``; weighted: ``argmax_i w_i * min_s dist``.
    The selected set covers every row within twice the optimal k-center radius (plain variant).
    With no ``start``, the first row is row 0 (plain) or the heaviest row (weighted), ties to the
    lowest row id.

    Parameters
    ----------
    matrix : ndarray, shape (n, d), float32 or float16
        Embeddings, validated finite (and non-zero for cosine) by the caller or by :func:`row_norms`.
    k : int
        Rows to select.
    metric : {"cosine", "l2"}
        ``1 - cos`` or Euclidean distance.
    start : ndarray of int64, shape (s,), optional
        Already selected rows (centres that are never returned).
    weights : ndarray, shape (n,), optional
        Non-negative weights of the weighted variant.
    prune : bool
        Triangle-inequality skipping (identical result up to float32 rounding).
    max_centres_per_pass : int
        Most centres one pass may add (see :func:`greedy_select`); 1 = one pass per centre.
    on_step : callable, optional
        Called after each selected row (progress reporting).
    stats : dict, optional
        Receives ``"rows_streamed"`` and ``"passes"`` (see :func:`greedy_select`).

    Returns
    -------
    order : ndarray of int64, shape (k,)
        Selected rows in selection order.
    radius : ndarray of float64, shape (k,)
        Each row's (weighted) distance to the set selected before it; ``inf`` for the first row
        when ``start`` is empty. ``radius[t]`` is the covering radius of the first ``t`` centres.

    Complexity: O((s + k) * n * d) time worst case, one streaming pass over the matrix per centre;
    O(n + (s + k) * d) extra memory.

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(1000, 16)).astype(np.float32)
    >>> order, radius = kcenter_greedy(x, 10, metric="l2")
    >>> bool(np.all(np.diff(radius[1:]) <= 1e-6))
    True
    """
    return greedy_select(matrix, k, metric=metric, start=start, weights=weights, prune=prune, max_centres_per_pass=max_centres_per_pass,
                         on_step=on_step, stats=stats)
