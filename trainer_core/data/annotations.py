"""Annotation readers: ICDAR-2015 text files, UFO JSON and polygon CSV, into :class:`Sample`
lists.

Bad annotations never stop a run. Each box is checked against its image: non-numeric or
non-finite coordinates, fewer than 3 distinct points and zero area drop the box; points outside
the image are clipped to it; a self-intersecting outline is repaired (vertices in convex
position are put back in order, anything else keeps the largest part of shapely's
``make_valid``) or dropped when nothing is left. A missing or unreadable image (a JPEG cut
off before its end marker included) or annotation file drops the sample. Every file with a
problem gets one warning that counts what was repaired and dropped and names the lines; the
first few dropped samples get one each, the rest only a count; each read ends with one summary
line. Images are taken as stored, ignoring any EXIF orientation (the annotation tools' pixel
grid). A missing image folder is an error, one line that names it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import shapely

from trainer_core.config import ConfigError, DataConfig
from trainer_core.errors import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "Sample",
    "clean_polygon",
    "image_size",
    "read_csv",
    "read_icdar",
    "read_samples",
    "read_ufo",
    "unreadable_reason",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Transcription of a don't-care region in ICDAR files.
DONT_CARE = "###"
# Problems listed in one file's warning before "... and N more".
_LISTED = 8
# Bytes at the end of a JPEG searched for its end-of-image marker (writers may pad after it).
_JPEG_TAIL = 4096


@dataclass(frozen=True, eq=False)
class Sample:
    """One annotated image.

    ``polygons`` are ``(N, 2)`` float32 arrays (``N >= 3``) in the image's pixel coordinates,
    ``ignore`` flags don't-care regions (``###`` or illegible). Compared by identity: the
    arrays make value equality ambiguous.
    """

    image: Path
    polygons: tuple[np.ndarray, ...]
    ignore: tuple[bool, ...]


def read_samples(cfg: DataConfig) -> list[Sample]:
    """The samples a data config points at, read with the reader its ``format`` names.

    Raises:
        ConfigError: ``format: ufo`` without ``annotations``.
        DataError: a missing image folder or an unreadable UFO file.

    Example:
        >>> cfg = DataConfig(format="icdar", image_root=Path("imgs"))
        >>> samples = read_samples(cfg)  # doctest: +SKIP
    """
    if cfg.format == "icdar":
        return read_icdar(cfg.image_root, cfg.annotations)
    if cfg.annotations is None:
        raise ConfigError("data.annotations: format 'ufo' needs the path of the JSON file")
    return read_ufo(cfg.annotations, cfg.image_root)


def read_icdar(image_root: Path, annotations: Path | None = None) -> list[Sample]:
    """ICDAR-2015-style annotations: one text file per image.

    The annotation of ``<stem>.jpg`` is ``gt_<stem>.txt``, ``res_<stem>.txt`` (a detector's
    results, as ``sweeper predict`` writes them), ``<stem>.txt`` or ``<stem>.csv`` in
    ``annotations`` (default: beside the images), else beside the image. Lines are
    ``x1,y1,...,x4,y4,transcription``; only the first 8 fields are split, so transcriptions
    may contain commas. A UTF-8 byte-order mark and CRLF line ends are fine; ``###`` marks a
    don't-care region.

    Raises:
        DataError: ``image_root`` is not a folder.

    Example:
        >>> root = Path("icdar2015_toy")
        >>> samples = read_icdar(root / "images", root / "annotations")  # doctest: +SKIP
        >>> sum(len(s.polygons) for s in samples)  # doctest: +SKIP
        82
    """
    image_root = Path(image_root)
    _check_folder(image_root)
    folders = [Path(annotations), image_root] if annotations is not None else [image_root]
    tally = _Tally(str(image_root))
    samples = []
    for image in sorted(p for p in image_root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        stem = image.stem
        names = (f"gt_{stem}.txt", f"res_{stem}.txt", f"{stem}.txt", f"{stem}.csv")
        found = next((d / n for d in folders for n in names if (d / n).is_file()), None)
        if found is None:
            tally.drop_sample(image, f"no annotation file ({', '.join(names)})")
            continue
        try:
            text = found.read_bytes().decode("utf-8-sig", errors="replace")
        except OSError as e:
            tally.drop_sample(image, f"cannot read {found} ({e.strerror})")
            continue
        words = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                words.append(_icdar_word(line, f"line {number}"))
        sample = _build_sample(image, words, found, tally)
        if sample is not None:
            samples.append(sample)
    tally.log()
    return samples


def read_ufo(json_path: Path, image_root: Path) -> list[Sample]:
    """UFO JSON (receipt OCR competitions): all images in one file.

    ``{"images": {"<file>": {"words": {"<id>": {"points": [[x, y], ...], "transcription":
    "...", "illegibility": false}}}}}``, file names relative to ``image_root``. Illegible
    words are don't-care regions.

    Raises:
        DataError: the JSON file is missing, not JSON, or not shaped like the above, or
            ``image_root`` is not a folder.

    Example:
        >>> root = Path("synth")
        >>> samples = read_ufo(root / "annotations.json", root / "images")  # doctest: +SKIP
    """
    json_path, image_root = Path(json_path), Path(image_root)
    try:
        tree = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except OSError as e:
        raise DataError(f"data.annotations: cannot read {json_path} ({e.strerror})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"data.annotations: {json_path} is not valid JSON ({e})") from e
    images = tree.get("images") if isinstance(tree, dict) else None
    if not isinstance(images, dict):
        raise DataError(f'data.annotations: {json_path} has no "images" mapping (UFO format)')
    _check_folder(image_root, f" ({len(images)} images named in {json_path})")
    tally = _Tally(str(json_path))
    samples = []
    for name in sorted(images):
        entry = images[name]
        words_tree = entry.get("words") if isinstance(entry, dict) else None
        if not isinstance(words_tree, dict):
            tally.drop_sample(image_root / name, f'{json_path}: image {name!r} has no "words"')
            continue
        words = [
            _ufo_word(word, f"image {name!r} word {key!r}") for key, word in words_tree.items()
        ]
        sample = _build_sample(image_root / name, words, json_path, tally, all_images=True)
        if sample is not None:
            samples.append(sample)
    tally.log()
    return samples


CSV_HEADER = ("filename", "polygons")


def read_csv(csv_path: Path, image_root: Path) -> list[Sample]:
    """Polygon CSV (a submission file): one row per image, ``filename,polygons``.

    ``polygons`` holds each polygon's points as ``x1 y1 x2 y2 ...``, polygons separated by
    ``|``; an image without detections has an empty field. A first row ``filename,polygons``
    is a header. Every polygon is cared for (the format has no don't-care flag).

    Raises:
        DataError: the file is missing or unreadable, or a row has no file name.

    Example:
        >>> samples = read_csv(Path("predictions.csv"), Path("test/images"))  # doctest: +SKIP
    """
    csv_path, image_root = Path(csv_path), Path(image_root)
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise DataError(f"{csv_path}: cannot read ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{csv_path}: not UTF-8 text ({e})") from e
    rows = list(csv.reader(io.StringIO(text)))
    if rows and tuple(cell.strip().lower() for cell in rows[0]) == CSV_HEADER:
        rows = rows[1:]
    tally = _Tally(str(csv_path))
    samples = []
    for number, row in enumerate(rows, start=2):
        if not row or not row[0].strip():
            if any(cell.strip() for cell in row):
                raise DataError(f"{csv_path}: row {number} has no file name")
            continue
        name, field_text = row[0].strip(), ",".join(row[1:])
        words = [
            _csv_word(part, f"row {number} polygon {k}")
            for k, part in enumerate(field_text.split("|"), start=1)
            if part.strip()
        ]
        sample = _build_sample(image_root / name, words, csv_path, tally, all_images=True)
        if sample is not None:
            samples.append(sample)
    tally.log()
    return samples


def _check_folder(image_root: Path, detail: str = "") -> None:
    """DataError naming ``image_root`` unless it is a folder: one line, not one per image."""
    if not image_root.exists():
        raise DataError(f"data.image_root: {image_root} does not exist{detail}")
    if not image_root.is_dir():
        raise DataError(f"data.image_root: {image_root} is not a folder{detail}")


def image_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image, from its header when it is JPEG or PNG.

    Reading the header only keeps reading a dataset's annotations fast; other formats are
    decoded. None when the file is missing or not a readable image.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return (height, width) if height and width else None
            if head[:2] == b"\xff\xd8":
                f.seek(2)
                size = _jpeg_size(f)
                return None if size is None or _jpeg_truncated(f) else size
    except OSError:
        return None
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imread(str(path), flags)
    return None if image is None else image.shape[:2]


def _jpeg_truncated(f: Any) -> bool:
    """Whether a JPEG lacks its end-of-image marker near the end: a cut-off file, which
    decoders read half ("Premature end of JPEG file") without saying which file it was."""
    f.seek(0, 2)
    end = f.tell()
    f.seek(max(0, end - _JPEG_TAIL))
    return b"\xff\xd9" not in f.read()


def _jpeg_size(f: Any) -> tuple[int, int] | None:
    """Walk a JPEG's markers to its start-of-frame segment."""
    while True:
        byte = f.read(1)
        while byte and byte != b"\xff":
            byte = f.read(1)
        while byte == b"\xff":
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length
        if marker == 0xD9:
            return None  # end of image before any frame
        raw = f.read(2)
        if len(raw) < 2:
            return None
        (length,) = struct.unpack(">H", raw)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame = f.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return (height, width) if height and width else None
        f.seek(length - 2, 1)


def unreadable_reason(path: Path) -> str:
    """Why an existing image cannot be used, in a few words."""
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"\xff\xd8" and _jpeg_size(f) is not None and _jpeg_truncated(f):
                return "truncated (a JPEG without its end-of-image marker)"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return "unreadable"


@dataclass
class _Word:
    """One box as read, before it is checked against its image."""

    where: str  # "line 3", "image 'a.jpg' word '7'"
    points: np.ndarray | None
    ignore: bool = False
    problem: str = ""  # why points is None


def _icdar_word(line: str, where: str) -> _Word:
    fields = line.split(",", 8)
    if len(fields) < 8:
        return _Word(where, None, problem=f"{len(fields)} fields, expected 8 coordinates")
    try:
        coords = [float(v) for v in fields[:8]]
    except ValueError:
        return _Word(where, None, problem="coordinates are not numbers")
    text = fields[8].strip().strip('"') if len(fields) > 8 else ""
    return _Word(where, np.array(coords).reshape(4, 2), ignore=text == DONT_CARE)


def _ufo_word(word: object, where: str) -> _Word:
    if not isinstance(word, dict):
        return _Word(where, None, problem="not a mapping")
    try:
        points = np.asarray(word.get("points"), dtype=np.float64)
    except (TypeError, ValueError):
        return _Word(where, None, problem="points are not numbers")
    if points.ndim != 2 or points.shape[1] != 2:
        return _Word(where, None, problem="points are not a list of [x, y] pairs")
    return _Word(where, points, ignore=bool(word.get("illegibility", False)))


def _csv_word(text: str, where: str) -> _Word:
    try:
        coords = [float(v) for v in text.split()]
    except ValueError:
        return _Word(where, None, problem="coordinates are not numbers")
    if len(coords) % 2:
        return _Word(where, None, problem=f"{len(coords)} coordinates, expected x y pairs")
    return _Word(where, np.array(coords).reshape(-1, 2))


@dataclass
class _Tally:
    """Counts for one read, and the warning per annotation file."""

    source: str
    images: int = 0
    boxes: int = 0
    dont_care: int = 0
    repaired: int = 0
    dropped: int = 0
    dropped_images: int = 0
    notes: list[str] = field(default_factory=list)

    def drop_sample(self, image: Path, why: str) -> None:
        """A warning for each of the first few dropped samples; the summary counts all."""
        self.dropped_images += 1
        if self.dropped_images <= _LISTED:
            logger.warning("%s: sample dropped: %s", image, why)
        elif self.dropped_images == _LISTED + 1:
            logger.warning(
                "%s: more samples dropped, not listed one by one; the summary line counts them",
                self.source,
            )

    def file_report(self, where: Path, kept: int, notes: list[str]) -> None:
        """One warning for a file: counts, then its problems in file order."""
        dropped = sum(n.endswith("(dropped)") for n in notes)
        repaired = len(notes) - dropped
        self.repaired += repaired
        self.dropped += dropped
        if not notes:
            return
        more = f"; ... and {len(notes) - _LISTED} more" if len(notes) > _LISTED else ""
        logger.warning(
            "%s: %d of %d boxes dropped, %d repaired: %s%s",
            where,
            dropped,
            kept + dropped,
            repaired,
            "; ".join(notes[:_LISTED]),
            more,
        )

    def log(self) -> None:
        level = logging.WARNING if self.dropped or self.dropped_images else logging.INFO
        logger.log(
            level,
            "%s: %d images, %d boxes (%d don't care); repaired %d boxes, dropped %d boxes "
            "and %d images",
            self.source,
            self.images,
            self.boxes,
            self.dont_care,
            self.repaired,
            self.dropped,
            self.dropped_images,
        )


def _build_sample(
    image: Path, words: Iterable[_Word], source: Path, tally: _Tally, all_images: bool = False
) -> Sample | None:
    """Check every box against the image; None (and a warning) when the image is unusable.

    ``all_images``: ``source`` annotates every image (UFO JSON, CSV), so warnings name the
    image too."""
    size = image_size(image)
    if size is None:
        reason = "missing" if not image.exists() else unreadable_reason(image)
        tally.drop_sample(image, f"image {reason} (annotations in {source})")
        return None
    polygons, ignore, notes = [], [], []
    for word in words:
        if word.points is None:
            notes.append(f"{word.where}: {word.problem} (dropped)")
            continue
        points, problem, repair = clean_polygon(word.points, size)
        if points is None:
            notes.append(f"{word.where}: {problem} (dropped)")
            continue
        if repair:
            notes.append(f"{word.where}: {repair} (repaired)")
        polygons.append(points)
        ignore.append(word.ignore)
    where = Path(f"{source} [{image.name}]") if all_images else source
    tally.file_report(where, len(polygons), notes)
    tally.images += 1
    tally.boxes += len(polygons)
    tally.dont_care += sum(ignore)
    return Sample(image=image, polygons=tuple(polygons), ignore=tuple(ignore))


def clean_polygon(
    points: np.ndarray, size_hw: tuple[int, int]
) -> tuple[np.ndarray | None, str, str]:
    """A polygon made safe to train on, or why it cannot be.

    Returns:
        ``(points, problem, repair)``: the (N, 2) float32 polygon or None, the reason it was
        dropped, and what was repaired ("" when nothing).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(pts).all():
        return None, "non-finite coordinate", ""
    height, width = size_hw
    repairs = []
    clipped = np.clip(pts, 0, (width - 1, height - 1))
    if not np.array_equal(clipped, pts):
        repairs.append("clipped to the image")
        pts = clipped
    # Consecutive repeats (and a closing point equal to the first) carry no shape.
    distinct = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)]
    if len(distinct) < 3:
        why = "outside the image" if repairs else "fewer than 3 distinct points"
        return None, why, ""
    pts = distinct
    polygon = shapely.Polygon(pts)
    if polygon.convex_hull.area <= 1e-9:
        return None, "outside the image" if repairs else "zero area", ""
    if not polygon.is_valid:
        fixed, how = _repair(polygon, pts)
        if fixed is None:
            return None, "self-intersecting, nothing usable left", ""
        repairs.append(f"self-intersecting outline, {how}")
        pts = fixed
    return pts.astype(np.float32), "", ", ".join(repairs)


def _repair(polygon: shapely.Polygon, pts: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Vertices in convex position get their hull order (a box whose corners were listed out
    of order); otherwise the largest polygon of ``make_valid``."""
    hull = polygon.convex_hull
    if isinstance(hull, shapely.Polygon) and len(hull.exterior.coords) - 1 == len(pts):
        return np.asarray(hull.exterior.coords)[:-1], "vertices put in order"
    valid = shapely.make_valid(polygon)
    pieces = valid.geoms if hasattr(valid, "geoms") else [valid]
    parts = [g for g in pieces if isinstance(g, shapely.Polygon) and g.area > 1e-9]
    if not parts:
        return None, ""
    largest = max(parts, key=lambda g: g.area)
    return np.asarray(largest.exterior.coords)[:-1], "kept its largest part"
