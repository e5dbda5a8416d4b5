"""DB training targets: probability map, its mask, threshold (border) map and its mask.

The geometry is DBNet's (MhLiao/DB ``make_seg_detection_data.py`` and ``make_border_map.py``):
each polygon is shrunk and dilated by ``D = A (1 - r²) / L``; the probability map is the shrunk
polygon, the threshold map ramps from ``thresh_max`` on the polygon's edge to ``thresh_min`` at
distance ``D`` from it, over the dilated polygon (its mask).

How, and why it is fast: all of it is read off one exact signed distance field per polygon
(units of D, negative inside) instead of two pyclipper offsets plus a per-edge distance map.
For a convex polygon with outward edge normals the signed distance is ``max_e s_e``, ``s_e``
the signed distance to edge ``e``'s line, except in the exterior wedges at the vertices, where
it is the distance to the vertex. ``s_e`` is a row vector plus a column vector, so the first
term is one numpy broadcast per polygon; the wedges are patched on the few pixels they cover,
vectorized over all vertices at once. Inside the image the field equals the per-pixel, per-edge
distance of the reference in ``benchmarks/targets.py`` to float32 precision.

The shrunk polygon is ``{field <= -1}`` and the dilated one ``{field <= 1}``: the point sets
pyclipper's round-joined offsets describe. A pixel belongs to them when its centre is within
half a pixel of them, which is how ``cv2.fillPoly`` rasterizes MhLiao's pyclipper polygons
(exactly so for axis-aligned edges). It matters for the round trip: post-processing's contours
run through boundary pixel centres, half a pixel inside the region, and the unclip ratio was
tuned on targets drawn that way. A polygon whose shrunk region holds no pixel (where pyclipper
would return ``[]``) is masked out like a too-small one. Non-convex polygons (curved text) take
a slower exact path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import cv2
import numpy as np

__all__ = ["db_targets", "shrink_distance"]

# Pixels exactly at distance D (integer rectangles with integer D) count as inside the shrunk
# and the dilated polygon; float32 rounding would otherwise decide.
_EPS = 1e-4
# cv2.fillPoly works in fixed point: 4 fractional bits (1/16 px).
_SHIFT = 4
# Any disc of this radius holds a pixel centre.
_HALF_DIAGONAL = 0.5**0.5
# Pixels within this distance (px) of the shrunk / dilated polygon belong to it.
_HALF_PIXEL = 0.5


def shrink_distance(polygon: np.ndarray, shrink_ratio: float = 0.4) -> float:
    """DB's offset distance ``D = A (1 - r²) / L`` of a polygon (0.0 when degenerate).

    Example:
        >>> shrink_distance(np.array([[0, 0], [100, 0], [100, 20], [0, 20]]), 0.4)
        7.0
    """
    p = np.asarray(polygon, dtype=np.float64)
    q = np.roll(p, -1, axis=0)
    area = abs(float(np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]))) / 2
    length = float(np.sum(np.hypot(*(q - p).T)))
    return area * (1 - shrink_ratio**2) / length if length > 0 else 0.0


def db_targets(
    shape_hw: tuple[int, int],
    polygons: Sequence[np.ndarray],
    ignore: Sequence[bool],
    shrink_ratio: float = 0.4,
    thresh_min: float = 0.3,
    thresh_max: float = 0.7,
    min_text_size: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Probability map, its mask, threshold map and its mask for one image.

    Args:
        shape_hw: ``(height, width)`` of the maps (the network input).
        polygons: ``(N, 2)`` arrays of ``x, y`` pixel coordinates, ``N >= 3``.
        ignore: don't-care flag per polygon.
        shrink_ratio: ``r`` in ``D = A (1 - r²) / L``.
        thresh_min: threshold map value at distance ``D`` from the edge and beyond.
        thresh_max: threshold map value on the polygon's edge.
        min_text_size: polygons whose minimum-area rectangle has a shorter side below this
            are masked out like don't-care ones.

    Returns:
        ``(prob, prob_mask, thresh, thresh_mask)``, float32 arrays of ``shape_hw`` (views of
        one block). ``prob`` is 1 inside the shrunk polygons; ``prob_mask`` is 0 over
        don't-care, too small and degenerate polygons; ``thresh`` is ``thresh_min`` outside the
        dilated polygons; ``thresh_mask`` is 1 inside them. Masked-out polygons get neither
        probability nor threshold targets; polygons with fewer than 3 points or non-finite
        coordinates are skipped.

    Example:
        >>> square = np.array([[10, 10], [40, 10], [40, 40], [10, 40]], dtype=np.float32)
        >>> prob, prob_mask, thresh, thresh_mask = db_targets((64, 64), [square], [False])
        >>> int(prob.sum()), round(float(thresh.max()), 3), int(thresh_mask.sum())
        (361, 0.7, 1825)
    """
    if len(polygons) != len(ignore):
        raise ValueError(f"{len(polygons)} polygons but {len(ignore)} ignore flags")
    maps = _Maps(int(shape_hw[0]), int(shape_hw[1]), thresh_min, thresh_max)
    by_size: dict[int, list[int]] = {}
    for i, polygon in enumerate(polygons):
        by_size.setdefault(len(polygon), []).append(i)
    flags = np.asarray(ignore, dtype=bool).reshape(-1)
    for size, members in by_size.items():
        if size < 3:
            continue
        pts = np.array([polygons[i] for i in members], dtype=np.float64).reshape(-1, size, 2)
        drawable = np.isfinite(pts).all(axis=(1, 2))
        dont_care = drawable & flags[members]
        for i in np.flatnonzero(dont_care):
            maps.mask_out(pts[i])
        _draw_same_size(maps, pts[drawable & ~dont_care], shrink_ratio, min_text_size)
    return maps.finish()


class _Maps:
    """The four output maps while polygons are drawn into them.

    They live in one block: on these machines fresh pages cost more than the arithmetic here
    (every sample returns new memory), and one block is one allocation instead of four.
    """

    def __init__(self, height: int, width: int, thresh_min: float, thresh_max: float) -> None:
        self.height, self.width = height, width
        self.thresh_min, self.thresh_max = thresh_min, thresh_max
        self.block = np.empty((4, height, width), np.float32)
        self.prob_mask = self.block[1]
        self.prob_mask.fill(1.0)
        # While drawing, the threshold slot holds min(1, |field|) over polygons and the
        # threshold-mask slot the minimum of field: prob is field <= -1, the masks field <= 1.
        self.unsigned = self.block[2]
        self.signed = self.block[3]
        self.unsigned.fill(1.0)
        self.signed.fill(np.inf)

    def mask_out(self, pts: np.ndarray) -> None:
        """prob_mask = 0 over a polygon (don't care, too small, or nothing left after shrink)."""
        fixed = np.round(pts * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(self.prob_mask, [fixed], 0.0, lineType=cv2.LINE_8, shift=_SHIFT)

    def merge(self, field: np.ndarray, y0: int, x0: int, half: float) -> None:
        """Merge one polygon's field on its window at ``(y0, x0)``; overwrites ``field``.

        ``field`` is the signed distance minus ``half`` (half a pixel in units of D), so that
        the shrunk and dilated regions are ``field <= -1`` and ``field <= 1`` for every polygon.
        """
        rows, cols = field.shape
        signed = self.signed[y0 : y0 + rows, x0 : x0 + cols]
        np.minimum(signed, field, out=signed)
        field += half
        unsigned = self.unsigned[y0 : y0 + rows, x0 : x0 + cols]
        np.minimum(unsigned, np.abs(field, out=field), out=unsigned)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        prob, prob_mask, thresh, thresh_mask = self.block
        # One vectorized pass each, float32 in and out.
        cv2.threshold(self.signed, -1 + _EPS, 1.0, cv2.THRESH_BINARY_INV, dst=prob)
        cv2.threshold(self.signed, 1 + _EPS, 1.0, cv2.THRESH_BINARY_INV, dst=thresh_mask)
        # (1 - d) (thresh_max - thresh_min) + thresh_min: exactly thresh_min from D on.
        span = self.thresh_max - self.thresh_min
        cv2.addWeighted(self.unsigned, -span, self.unsigned, 0.0, span, dst=thresh)
        thresh += self.thresh_min
        return prob, prob_mask, thresh, thresh_mask


def _draw_same_size(maps: _Maps, pts: np.ndarray, shrink_ratio: float, min_text: int) -> None:
    """Draw polygons that all have the same number of vertices, ``pts`` (P, E, 2)."""
    n_vert = pts.shape[1]
    # Vertex-major (E, P) coordinates: reductions over vertices become elementwise passes,
    # several times cheaper in numpy than reducing a short last axis.
    x = np.ascontiguousarray(pts[..., 0].T)
    y = np.ascontiguousarray(pts[..., 1].T)
    nxt = (np.arange(n_vert) + 1) % n_vert
    ex, ey = x[nxt] - x, y[nxt] - y
    length = np.hypot(ex, ey)
    cross2 = (x * y[nxt] - x[nxt] * y).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        area_per_length = np.abs(cross2) / 2 / length.sum(axis=0)
        ux, uy = ex / length, ey / length
    dist = area_per_length * (1 - shrink_ratio**2)
    usable = (dist > 0) & np.isfinite(dist)
    convex = usable & _is_convex(ex, ey, length, cross2)
    short = np.zeros(len(dist))
    short[convex] = _short_side_convex(x[:, convex], y[:, convex], ux[:, convex], uy[:, convex])
    for i in np.flatnonzero(usable & ~convex):
        short[i] = min(cv2.minAreaRect(pts[i].astype(np.float32))[1])
    keep = usable & (short >= min_text)
    reach = dist + _HALF_PIXEL
    x0 = np.clip(np.floor(x.min(axis=0) - reach), 0, maps.width).astype(np.int64)
    x1 = np.clip(np.floor(x.max(axis=0) + reach) + 1, 0, maps.width).astype(np.int64)
    y0 = np.clip(np.floor(y.min(axis=0) - reach), 0, maps.height).astype(np.int64)
    y1 = np.clip(np.floor(y.max(axis=0) + reach) + 1, 0, maps.height).astype(np.int64)
    for i in np.flatnonzero(~keep):
        maps.mask_out(pts[i])
    keep &= (x1 > x0) & (y1 > y0)  # entirely outside the image: nothing to draw
    # Bonnesen: a convex polygon's inradius is at least A / L, so when A / L - D + 1/2 reaches
    # half a pixel diagonal the shrunk region surely holds a pixel; only the rest are checked.
    maybe_empty = ~convex | (area_per_length - dist + _HALF_PIXEL < _HALF_DIAGONAL)
    half = _HALF_PIXEL / np.where(usable, dist, 1.0)
    windows = np.stack([x0, x1, y0, y1])
    fast = np.flatnonzero(keep & convex)
    if len(fast):
        fields = _convex_fields(
            x[:, fast],
            y[:, fast],
            ux[:, fast],
            uy[:, fast],
            cross2[fast],
            dist[fast],
            windows[:, fast],
        )
        # Each field is merged while it is still in cache (the generator reuses its buffer).
        per_poly = [a[fast].tolist() for a in (y0, x0, half, maybe_empty)]
        for i, top, left, shift, check, field in zip(fast.tolist(), *per_poly, fields, strict=True):
            _merge_or_mask(maps, field, pts[i], top, left, shift, check)
    for i in np.flatnonzero(keep & ~convex).tolist():
        field = _generic_field(pts[i], float(dist[i]), windows[:, i])
        _merge_or_mask(maps, field, pts[i], int(y0[i]), int(x0[i]), float(half[i]), True)


def _merge_or_mask(
    maps: _Maps, field: np.ndarray, pts: np.ndarray, y0: int, x0: int, half: float, check: bool
) -> None:
    """Merge a polygon's field, or mask the polygon out when its shrunk region has no pixel."""
    if check and field.min() > -1 + _EPS:
        maps.mask_out(pts)
    else:
        maps.merge(field, y0, x0, half)


def _is_convex(
    ex: np.ndarray, ey: np.ndarray, length: np.ndarray, cross2: np.ndarray
) -> np.ndarray:
    """Convex and simple: every turn has the orientation's sign, total turning is one turn."""
    n_vert = len(ex)
    back = (np.arange(n_vert) - 1) % n_vert
    turn_cross = ex[back] * ey - ey[back] * ex
    tolerance = -1e-9 * length * length[back]
    ok = (length > 0).all(axis=0) & (turn_cross * np.sign(cross2) >= tolerance).all(axis=0)
    if n_vert > 4:  # four turns of one sign cannot wind twice
        turn_dot = ex[back] * ex + ey[back] * ey
        winding = np.abs(np.arctan2(turn_cross, turn_dot).sum(axis=0))
        ok &= np.abs(winding - 2 * np.pi) < 1e-6
    return ok


def _short_side_convex(x: np.ndarray, y: np.ndarray, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """Shorter side of the minimum-area rectangle, which has a side on one of the edges."""
    # (vertex, edge direction, polygon): projections on each edge and on its normal.
    along = x[:, None] * ux[None] + y[:, None] * uy[None]
    across = y[:, None] * ux[None] - x[:, None] * uy[None]
    ext_a = along.max(axis=0) - along.min(axis=0)
    ext_n = across.max(axis=0) - across.min(axis=0)
    best = np.argmin(ext_a * ext_n, axis=0)
    return np.minimum(ext_a, ext_n)[best, np.arange(x.shape[1])]


def _ragged_arange(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without a loop."""
    offsets = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) - np.repeat(offsets - starts, counts)


def _convex_fields(
    x: np.ndarray,
    y: np.ndarray,
    ux: np.ndarray,
    uy: np.ndarray,
    cross2: np.ndarray,
    dist: np.ndarray,
    windows: np.ndarray,
) -> Iterator[np.ndarray]:
    """Fields (units of D, negative inside) of convex polygons on their windows, in order.

    Vertices and unit edge vectors are (E, P); ``windows`` holds rows ``x0, x1, y0, y1``.
    Each field lives in a buffer the next one reuses: use it before asking for the next.
    """
    n_edge = len(x)
    x0, x1, y0, y1 = windows
    orient = np.sign(cross2)
    # Outward normals over D: s_e = kx * (col - x0) + ky * (row - y0) + c, relative to the
    # window so float32 keeps its precision.
    kx = orient * uy / dist
    ky = -orient * ux / dist
    # Minus half a pixel (see _Maps.merge): a constant shift commutes with the maximum.
    const = kx * (x0 - x) + ky * (y0 - y) - _HALF_PIXEL / dist
    width, height = x1 - x0, y1 - y0
    cols = _ragged_arange(np.zeros_like(width), width)
    rows = _ragged_arange(np.zeros_like(height), height)
    col_terms = (np.repeat(kx, width, axis=1) * cols + np.repeat(const, width, axis=1)).astype(
        np.float32
    )  # (E, sum of widths)
    row_terms = (np.repeat(ky, height, axis=1) * rows).astype(np.float32)  # (E, sum of heights)
    wedges = _vertex_wedges(x, y, ux, uy, orient, dist, windows)
    largest = int((width * height).max())
    scratch = np.empty(n_edge * largest, np.float32)
    out = np.empty(largest, np.float32)
    col_at = (np.cumsum(width) - width).tolist()
    row_at = (np.cumsum(height) - height).tolist()
    sizes = zip(width.tolist(), height.tolist(), col_at, row_at, wedges, strict=True)
    for w, h, a, b, (index, value) in sizes:
        per_edge = np.add(
            col_terms[:, None, a : a + w],
            row_terms[:, b : b + h, None],
            out=scratch[: n_edge * h * w].reshape(n_edge, h, w),
        )
        field = np.maximum.reduce(per_edge, axis=0, out=out[: h * w].reshape(h, w))
        field.reshape(-1)[index] = value
        yield field


def _vertex_wedges(
    x: np.ndarray,
    y: np.ndarray,
    ux: np.ndarray,
    uy: np.ndarray,
    orient: np.ndarray,
    dist: np.ndarray,
    windows: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact fields in the exterior wedges at the vertices, per polygon.

    Outside a convex polygon ``max_e s_e`` is the distance except in the wedge between the two
    outward normals at a vertex (before edge k starts, after edge k-1 ends), where the nearest
    point is the vertex. There ``max_e s_e >= |p - v| cos(phi / 2)``, phi the angle between the
    normals, so every wrong pixel that matters (distance up to D plus half a pixel) lies within
    ``R = (D + 1/2) / cos(phi / 2)`` of the vertex. Each pixel row of that sector meets the
    wedge in one interval, computed per row; only pixels in those intervals are generated.
    Returns, per polygon, flat indices into its window and the values (distance / D, minus
    half a pixel as in :meth:`_Maps.merge`) to write there.
    """
    n_vert, n_poly = x.shape
    x0, x1, y0, y1 = windows
    back = (np.arange(n_vert) - 1) % n_vert
    # Per vertex, polygon-major so that each polygon's pixels come out contiguous.
    flat = lambda a: np.ascontiguousarray(a.T).reshape(-1)  # noqa: E731
    ny = -orient * ux
    nx = orient * uy
    cos_phi = flat(nx * nx[back] + ny * ny[back]).clip(-1.0, 1.0)
    # The wedge is {d : c1 . d > 0 and c2 . d > 0}: before edge k, after edge k-1.
    c1x, c1y, c2x, c2y = flat(-ux), flat(-uy), flat(ux[back]), flat(uy[back])
    owner = np.repeat(np.arange(n_poly), n_vert)
    vx, vy = flat(x), flat(y)
    radius = (dist[owner] + _HALF_PIXEL) / np.maximum(np.sqrt((1 + cos_phi) / 2), 1e-6)
    # Rows the sector spans: its two bounding rays, and straight up / down if inside it.
    ray_y = np.stack([flat(ny), flat(ny[back])])
    top = np.where((c1y <= 0) & (c2y <= 0), -1.0, np.minimum(ray_y.min(axis=0), 0.0))
    bottom = np.where((c1y >= 0) & (c2y >= 0), 1.0, np.maximum(ray_y.max(axis=0), 0.0))
    first_row = np.maximum(np.floor(vy + top * radius), y0[owner]).astype(np.int64)
    end_row = np.minimum(np.floor(vy + bottom * radius) + 1, y1[owner]).astype(np.int64)
    # A straight vertex (phi = 0) has no wedge.
    rows = np.where(cos_phi < 1 - 1e-12, np.maximum(end_row - first_row, 0), 0)
    row_vertex = np.repeat(np.arange(len(rows)), rows)
    row_y = _ragged_arange(first_row, rows)
    rel_y = row_y - np.repeat(vy, rows)
    row_vx = np.repeat(vx, rows)
    left = np.repeat(np.maximum(vx - radius, x0[owner]), rows)
    right = np.repeat(np.minimum(vx + radius, x1[owner] - 1), rows)
    # c . (p - v) > 0 bounds x on one side when c_x != 0, else keeps or drops the whole row.
    for cx_v, cy_v in ((c1x, c1y), (c2x, c2y)):
        cx, cy = np.repeat(cx_v, rows), np.repeat(cy_v, rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = row_vx - cy * rel_y / cx
        left = np.where(cx > 0, np.maximum(left, bound), left)
        right = np.where(cx < 0, np.minimum(right, bound), right)
        right = np.where((cx == 0) & (cy * rel_y <= 0), -np.inf, right)
    first = np.ceil(left)
    count = np.maximum(np.floor(right) - first + 1, 0).astype(np.int64)
    # Everything per pixel is a row constant repeated along the row's interval.
    row_poly = owner[row_vertex]
    inv = 1.0 / dist[row_poly]
    row_base = (row_y - y0[row_poly]) * (x1 - x0)[row_poly] - x0[row_poly]
    px = _ragged_arange(first.astype(np.int64), count)
    index = px + np.repeat(row_base, count)
    dx = (px - np.repeat(row_vx, count)).astype(np.float32)
    dx *= np.repeat(inv.astype(np.float32), count)
    dy = np.repeat((rel_y * inv).astype(np.float32), count)
    value = np.sqrt(dx * dx + dy * dy)
    value -= np.repeat((_HALF_PIXEL * inv).astype(np.float32), count)
    per_poly = np.bincount(row_poly, count, minlength=n_poly).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(per_poly)]).tolist()
    return [(index[s:e], value[s:e]) for s, e in pairwise(bounds)]


def _generic_field(pts: np.ndarray, dist: float, window: np.ndarray) -> np.ndarray:
    """Field (units of D, negative inside) of any simple polygon: exact distance to each edge."""
    x0, x1, y0, y1 = (int(v) for v in window)
    local = pts - (x0, y0)
    start = local[:, :, None, None]
    edge = (np.roll(local, -1, axis=0) - local)[:, :, None, None]
    rel_x = np.arange(x1 - x0, dtype=np.float64)[None, None, :] - start[:, 0]
    rel_y = np.arange(y1 - y0, dtype=np.float64)[None, :, None] - start[:, 1]
    sq_len = np.maximum(edge[:, 0] ** 2 + edge[:, 1] ** 2, 1e-12)
    t = np.clip((rel_x * edge[:, 0] + rel_y * edge[:, 1]) / sq_len, 0.0, 1.0)
    nearest = np.min((rel_x - t * edge[:, 0]) ** 2 + (rel_y - t * edge[:, 1]) ** 2, axis=0)
    unsigned = np.sqrt(nearest) / dist
    inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(inside, [np.round(local * (1 << _SHIFT)).astype(np.int32)], 1, shift=_SHIFT)
    signed = np.where(inside > 0, -unsigned, unsigned) - _HALF_PIXEL / dist
    return signed.astype(np.float32)
