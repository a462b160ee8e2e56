"""Perceptual image hashes (phash, dhash, ahash, whash) over batches of small grayscale images.

Arrays in, arrays out: callers decode and shrink images (the part that needs PIL) and hand over a
stack of grayscale pixels; these kernels do the transform, the threshold and the bit packing for the
whole batch at once.

Bit layout: the ``hash_size x hash_size`` bit matrix is flattened row-major and packed
most-significant-bit first into big-endian 64-bit words, zero padded at the end. For
``hash_size=8`` the single word equals ``int(str(imagehash_hash), 16)``.
"""

from __future__ import annotations

import numba
import numpy as np


def dct_matrix(size: int, rows: int) -> np.ndarray:
    """First ``rows`` rows of the unnormalised DCT-II matrix of length ``size``.

    ``dct_matrix(n, n) @ x`` equals ``scipy.fftpack.dct(x)`` (type II, no normalisation) up to
    floating-point rounding.

    Parameters
    ----------
    size : int
        Transform length.
    rows : int
        Number of low-frequency rows kept.

    Returns
    -------
    ndarray of float64, shape (rows, size)
        ``C[k, j] = 2 cos(pi k (2j + 1) / (2 size))``.

    Example
    -------
    >>> dct_matrix(4, 2).shape
    (2, 4)
    """
    k = np.arange(rows, dtype=np.float64)[:, None]
    j = np.arange(size, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * j + 1.0) / (2.0 * size))


@numba.njit(cache=True, nogil=True)
def _dct_lowfreq(x, rows, cols):
    n, height, width = x.shape
    kept = rows.shape[0]
    out = np.empty((n, kept, kept), dtype=np.float64)
    horizontal = np.empty((height, kept), dtype=np.float64)
    for i in range(n):
        for r in range(height):
            for c in range(kept):
                total = 0.0
                for q in range(width):
                    total += x[i, r, q] * cols[c, q]
                horizontal[r, c] = total
        for a in range(kept):
            for c in range(kept):
                total = 0.0
                for r in range(height):
                    total += rows[a, r] * horizontal[r, c]
                out[i, a, c] = total
    return out


def dct_lowfreq(pixels: np.ndarray, hash_size: int) -> np.ndarray:
    """Top-left ``hash_size x hash_size`` block of the 2-D DCT-II of every image.

    Computes only the kept low frequencies (``C_k X C_k^T``), so the cost is
    ``O(n * size^2 * hash_size)`` instead of a full transform per image. Single-threaded on
    purpose: thousands of tiny products are where BLAS worker threads spin and cost more than the
    arithmetic (2x slower end to end on a loaded 2-core machine).

    Parameters
    ----------
    pixels : ndarray, shape (n, size, size), any real dtype
        Grayscale images.
    hash_size : int
        Number of low frequencies kept per axis.

    Returns
    -------
    ndarray of float64, shape (n, hash_size, hash_size)
        Rows index vertical frequency, columns horizontal frequency (scipy's axis order).

    Example
    -------
    >>> dct_lowfreq(np.ones((2, 32, 32)), 8)[:, 0, 0].tolist()
    [4096.0, 4096.0]
    """
    _, height, width = pixels.shape
    x = np.ascontiguousarray(pixels, dtype=np.float64)
    return _dct_lowfreq(x, dct_matrix(height, hash_size), dct_matrix(width, hash_size))


@numba.njit(cache=True, nogil=True)
def _above_median(values: np.ndarray) -> np.ndarray:
    n, m = values.shape
    bits = np.empty((n, m), dtype=np.bool_)
    for i in range(n):
        ordered = np.sort(values[i])
        # numpy.median: the middle value, or the mean of the two middle values.
        if m % 2 == 1:
            median = ordered[m // 2]
        else:
            median = (ordered[m // 2 - 1] + ordered[m // 2]) / 2.0
        for k in range(m):
            bits[i, k] = values[i, k] > median
    return bits


def above_median(values: np.ndarray) -> np.ndarray:
    """Per row, which values exceed the row's median (``numpy.median`` semantics, bit for bit).

    Parameters
    ----------
    values : ndarray of float64, shape (n, m)

    Returns
    -------
    ndarray of bool, shape (n, m)

    Complexity: O(n m log m).

    Example
    -------
    >>> above_median(np.array([[1.0, 4.0, 2.0, 3.0]])).tolist()
    [[False, True, False, True]]
    """
    return _above_median(np.ascontiguousarray(values, dtype=np.float64))


@numba.njit(cache=True, nogil=True)
def _above_mean(pixels: np.ndarray) -> np.ndarray:
    n, m = pixels.shape
    bits = np.empty((n, m), dtype=np.bool_)
    for i in range(n):
        total = 0.0
        for k in range(m):
            total += np.float64(pixels[i, k])
        # For 8-bit pixels the sum is an exact integer whatever the order, as in numpy.mean.
        mean = total / m
        for k in range(m):
            bits[i, k] = pixels[i, k] > mean
    return bits


def above_mean(pixels: np.ndarray) -> np.ndarray:
    """Per row, which pixels exceed the row's mean (the average-hash rule, as imagehash).

    Parameters
    ----------
    pixels : ndarray, shape (n, m)
        8-bit pixels (bit-identical to imagehash) or floats.

    Returns
    -------
    ndarray of bool, shape (n, m)

    Example
    -------
    >>> above_mean(np.array([[0, 10, 20, 30]], dtype=np.uint8)).tolist()
    [[False, False, True, True]]
    """
    return _above_mean(np.ascontiguousarray(pixels))


def horizontal_gradient_bits(pixels: np.ndarray) -> np.ndarray:
    """The difference-hash rule: is each pixel brighter than its left neighbour.

    Parameters
    ----------
    pixels : ndarray of uint8 or float, shape (n, h, w + 1)

    Returns
    -------
    ndarray of bool, shape (n, h * w)

    Example
    -------
    >>> horizontal_gradient_bits(np.array([[[1, 2, 0]]], dtype=np.uint8)).tolist()
    [[True, False]]
    """
    bits = pixels[:, :, 1:] > pixels[:, :, :-1]
    return bits.reshape(pixels.shape[0], -1)


def haar_lowfreq(pixels: np.ndarray, hash_size: int) -> np.ndarray:
    """Wavelet-hash low band without pywt: block sums of the mean-removed image, scaled as Haar's LL.

    A full Haar decomposition with its coarsest LL zeroed and reconstructed is the image minus its
    mean; the level-``L`` Haar LL band is the sum of each ``2^L x 2^L`` block divided by ``2^L``.
    Equal to imagehash's ``whash`` (mode ``"haar"``, ``remove_max_haar_ll=True``) up to rounding.

    Parameters
    ----------
    pixels : ndarray, shape (n, scale, scale), values in [0, 1]
        ``scale`` is a power of two and a multiple of ``hash_size``.
    hash_size : int

    Returns
    -------
    ndarray of float64, shape (n, hash_size * hash_size)

    Example
    -------
    >>> haar_lowfreq(np.eye(4)[None], 2).round(3).tolist()
    [[0.5, -0.5, -0.5, 0.5]]
    """
    n, scale, _ = pixels.shape
    block = scale // hash_size
    x = np.asarray(pixels, dtype=np.float64)
    centred = x - x.mean(axis=(1, 2), keepdims=True)
    sums = centred.reshape(n, hash_size, block, hash_size, block).sum(axis=(2, 4))
    return sums.reshape(n, -1) / block


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack bit rows most-significant-bit first into big-endian 64-bit words.

    Parameters
    ----------
    bits : ndarray of bool, shape (n, m)

    Returns
    -------
    ndarray of uint64, shape (n, ceil(m / 64))
        Zero padded at the end of the last word.

    Example
    -------
    >>> hex(int(pack_bits(np.array([[True] + [False] * 63]))[0, 0]))
    '0x8000000000000000'
    """
    n, m = bits.shape
    words = max(1, -(-m // 64))
    packed = np.zeros((n, words * 8), dtype=np.uint8)
    packed[:, : -(-m // 8)] = np.packbits(bits, axis=1)
    return packed.view(">u8").astype(np.uint64)


@numba.njit(cache=True, nogil=True)
def _sampled_box_gray(pixels, out_height, out_width, per_cell_y, per_cell_x):
    height, width, channels = pixels.shape
    lattice_y = out_height * per_cell_y
    lattice_x = out_width * per_cell_x
    columns = np.empty(lattice_x, dtype=np.int64)
    for b in range(lattice_x):
        columns[b] = min(width - 1, int((b + 0.5) * width / lattice_x))
    bands = 3 if channels >= 3 else 1
    # Integer sums per cell and band in registers (a running sum in memory would serialise every
    # add on a store-to-load round trip); the luma weights are applied once per cell at the end.
    sums = np.zeros((out_height, out_width, bands), dtype=np.int64)
    for i in range(out_height):
        for a in range(per_cell_y):
            y = min(height - 1, int((i * per_cell_y + a + 0.5) * height / lattice_y))
            row = pixels[y]
            for j in range(out_width):
                first = j * per_cell_x
                if bands == 3:
                    red = np.int64(0)
                    green = np.int64(0)
                    blue = np.int64(0)
                    for b in range(first, first + per_cell_x):
                        x = columns[b]
                        red += row[x, 0]
                        green += row[x, 1]
                        blue += row[x, 2]
                    sums[i, j, 0] += red
                    sums[i, j, 1] += green
                    sums[i, j, 2] += blue
                else:
                    grey = np.int64(0)
                    for b in range(first, first + per_cell_x):
                        grey += row[columns[b], 0]
                    sums[i, j, 0] += grey
    out = np.empty((out_height, out_width), dtype=np.float64)
    scale = 1.0 / (per_cell_y * per_cell_x)
    for i in range(out_height):
        for j in range(out_width):
            if bands == 3:
                # ITU-R 601-2 luma, the weights of PIL's convert("L").
                total = 0.299 * sums[i, j, 0] + 0.587 * sums[i, j, 1] + 0.114 * sums[i, j, 2]
            else:
                total = np.float64(sums[i, j, 0])
            out[i, j] = total * scale
    return out


def sampled_box_gray(pixels: np.ndarray, out_height: int, out_width: int, lattice: int = 128) -> np.ndarray:
    """Shrink an image to a small grayscale grid by averaging a regular lattice of pixel samples.

    Each output cell averages ``per_cell_y x per_cell_x`` nearest-neighbour samples (at least 4 x
    4, about ``lattice`` samples per side in all), so only ~``lattice^2`` pixels are read whatever
    the image size: the cost is O(lattice^2), not O(height * width). An approximation of a box
    filter (aliasing on fine periodic texture), used by the fast hash mode.

    Parameters
    ----------
    pixels : ndarray of uint8, shape (height, width) or (height, width, channels)
        Grayscale (1 channel) or RGB-first (3+ channels; extra channels such as alpha ignored).
    out_height, out_width : int
    lattice : int
        Samples per side, spread over the whole image.

    Returns
    -------
    ndarray of float64, shape (out_height, out_width), values in [0, 255]

    Example
    -------
    >>> sampled_box_gray(np.full((300, 400, 3), 200, dtype=np.uint8), 8, 9).shape
    (8, 9)
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    per_cell_y = max(4, -(-lattice // out_height))
    per_cell_x = max(4, -(-lattice // out_width))
    return _sampled_box_gray(pixels, out_height, out_width, per_cell_y, per_cell_x)
