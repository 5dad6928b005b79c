"""Perceptual duplicates: the same picture stored as different bytes.

Definition and choices (each one is tested in tests/unit/test_dedup_perceptual.py):

* Input: files with a 64-bit pHash (16 hex digits) taken *after* EXIF orientation, so a
  rotated-pixels copy whose orientation tag was rewritten hashes like the original.
* Uninformative hashes are skipped. A flat or nearly flat image (black frame, grey
  placeholder, 8x8 thumbnail) makes most DCT coefficients tie at the median, so its
  hash is almost all zeros or all ones and every such image "matches" every other.
  A hash with fewer than ``MIN_BITS`` or more than ``64 - MIN_BITS`` set bits says
  nothing about the picture; a real photo's hash has about 32.
* Hard links (same device+inode) are one file.
* Byte-identical files are reported once, as an exact group. Here each exact group is
  represented by one member, the one ``stand_in`` picks: the caller passes the copy its
  exact group keeps (core.dedup.groups does), so that the look-alike group's suggestion
  never trashes the copy the exact group keeps and keeps one it trashes (accepting every
  suggestion at once would contradict itself); without one, the smallest path. A
  perceptual cluster may contain that representative, and ``Cluster.exact_of`` names
  the exact group it stands for so the UI can say "and N byte-identical copies, see
  that group".
* Pairs inside one file group (a RAW and its JPEG, a photo and its edit) are versions,
  not duplicates: they are never linked, also when one side is an exact representative
  whose copy is the group member. So are a RAW and a JPEG/HEIC of one stem, capture time
  and camera in two folders (two card slots, an import sorted into ``RAW/`` and ``JPG/``),
  which grouping does not pair; and such a RAW and every member of its rendition's file
  group (``JPG/IMG_1.JPG`` and its edit ``JPG/IMG_1-Edit.jpg`` make an ``edited`` group:
  the edit is a version of ``RAW/IMG_1.CR2`` too, not a look-alike to trash), and a
  rendition of the RAW and an edit in the RAW's or a rendition's group. Two renditions
  of one RAW are not versions of each other: ``Shared/IMG_1.JPG``, a Q70 copy of the
  camera's ``Shoot/IMG_1.JPG`` (paired with ``Shoot/IMG_1.CRW``), has the same stem,
  capture time and camera, and is its duplicate.
* No chaining: clusters are built by complete linkage. Edges (distance <= threshold)
  are taken shortest first (ties by canonical member order) and two clusters merge
  only if *every* cross pair is a valid edge. So every member is within the threshold
  of every other member: A~B and B~C with A far from C gives {A, B}, and C (already
  claimed by B's cluster and too far from A) is left out rather than put in a second,
  overlapping cluster - one file never has two contradictory keeper suggestions.
* Two exposures of one session are never one picture. pHash cannot tell the frames of a
  burst (1/10 s and a 1-2 % drift apart: distance 0-6), the -1/-2 EV frames of a bracket
  (0-2) or two lens-cap frames (equal hashes from the vignetting) from copies; the
  metadata can: a copy keeps its DateTimeOriginal and sub-seconds. ``different_shots``:
  both capture times known, within ``SESSION`` of each other, and different (or equal
  but from two camera models, compared loosely as grouping does). Most cameras write no
  sub-seconds (or always 00), so a burst's frames share their second: equal whole-second
  times are one picture only if the names say so (one stem begins with the other's:
  ``IMG_1234.JPG`` and ``IMG_1234-1.jpg``, not ``IMG_1235.JPG``), or the sizes do (one
  image is the other made smaller, its aspect ratio kept, under a name that is not the
  next number of its counter: an export renamed and resized on the way). An export
  renamed at full size is missed (nothing tells it from the next frame), and so is one
  of a burst whose frames' pHashes tie (it may link to the neighbouring frame: the
  first by path wins). Further apart, the
  disagreement is as likely a rewritten date on a copy (a clock fixed years later) as
  another shot, so the picture decides as before; unknown values (an EXIF-stripped
  copy) are no objection either.
* Colour check (optional): pHash sees only the luminance structure of a 32x32 grey
  image, so a strong colour edit (sepia, posterize, heavy saturation) keeps most of its
  bits (median distance 6 for a sepia+contrast edit in bench/RESULTS.md). When
  both files carry a colour signature - the mean R, G, B of a 4x4 grid of the oriented
  picture, 48 bytes as 96 hex digits - a pair is linked only if the mean absolute
  difference of those bytes is <= ``colour_tolerance`` (re-encodes, resizes and format
  changes stay under 2.5; the colour-edit decoys are above 3). Files without a
  signature fall back to pHash alone.
* Determinism: members are ordered by (path, id) before anything else, so the same
  catalog gives the same clusters whatever order the rows come in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from core.dedup.exact import collapse_hard_links, exact_groups, exact_index, hard_link_aliases
from core.grouping.rules import cameras_differ
from core.records import FileRecord

try:  # the shared similarity index, when it exists
    from core.simindex import pairs_within  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the tree
    from core.dedup._bruteforce import pairs_within  # type: ignore[assignment]

HASH_BITS = 64
MIN_BITS = 8
COLOUR_TOLERANCE = 6.0  # mean absolute difference of the 4x4 RGB grid, 0..255
SESSION = timedelta(days=1)  # a day's shooting: bursts, brackets, stacks, time-lapses

SameGroup = Callable[[int, int], bool] | Mapping[int, object] | None


def similarity_score(distance: int) -> float:
    """1 - d/64: 1.0 for identical hashes, 0.0 for complementary ones. Independent of
    the threshold, so a stored score does not move when the setting changes."""
    d = min(max(int(distance), 0), HASH_BITS)
    return 1.0 - d / HASH_BITS


def phash_int(phash: str) -> int:
    return int(phash, 16)


def informative(phash: str) -> bool:
    """False for the near-constant hashes of flat images (see module doc)."""
    bits = phash_int(phash).bit_count()
    return MIN_BITS <= bits <= HASH_BITS - MIN_BITS


def colour_distance(a: str, b: str) -> float:
    """Mean absolute difference (0..255) of two colour signatures (hex of equal length)."""
    va, vb = bytes.fromhex(a), bytes.fromhex(b)
    if len(va) != len(vb) or not va:
        raise ValueError("colour signatures differ in length")
    return sum(abs(x - y) for x, y in zip(va, vb, strict=True)) / len(va)


def hamming(a: str, b: str) -> int:
    return (phash_int(a) ^ phash_int(b)).bit_count()


def different_shots(a: FileRecord, b: FileRecord) -> bool:
    """True when metadata says ``a`` and ``b`` are two exposures (see module doc)."""
    if a.taken_at is None or b.taken_at is None:
        return False
    gap = abs(a.taken_at - b.taken_at)
    if gap > SESSION:
        return False
    if gap or cameras_differ(a, b):  # (cameras compared as grouping does)
        return True
    if a.taken_at.microsecond or b.taken_at.microsecond:
        return False  # equal to the fraction of a second: a copy
    # Equal to the second, without fractions: most cameras write none (or always 00), so
    # every frame of a burst shares its second. A copy then shows by its name, or by its
    # size under another name: an export resized on the way. Two frames of one camera's
    # counter are never that (a RAW+small-JPEG burst, JPEG L and S on two cards).
    if names_related(a.path, b.path):
        return False
    return not (one_resized(a, b) and not one_counter(a.path, b.path))


# How far two aspect ratios may differ for one picture to be the other resized (rounding
# of a resize to whole pixels: under 1% for any picture of 100 pixels or more)
ASPECT_TOLERANCE = 0.02
# How much smaller the long side must be to be a resize: a camera's JPEG is a few pixels
# short of the sensor (6000 against 6048), a resized export far more
RESIZED_AT_MOST = 0.9


def one_resized(a: FileRecord, b: FileRecord) -> bool:
    """One picture is the other made smaller, its shape kept (a resized export, a chat
    app's copy): both images (a RAW's size is its sensor's, not a picture's), both sizes
    known, the long side at most ``RESIZED_AT_MOST`` of the other's, one aspect ratio."""
    if a.kind == "raw" or b.kind == "raw":
        return False
    if not (a.width and a.height and b.width and b.height):
        return False
    short_a, long_a = sorted((a.width, a.height))
    short_b, long_b = sorted((b.width, b.height))
    if min(long_a, long_b) > RESIZED_AT_MOST * max(long_a, long_b):
        return False
    ratio_a, ratio_b = short_a / long_a, short_b / long_b
    return abs(ratio_a - ratio_b) <= ASPECT_TOLERANCE * ratio_a


_COUNTER = re.compile(r"(.*?)(\d+)")


def one_counter(a: str, b: str) -> bool:
    """Two names of one camera's counter: one prefix, then different numbers
    (``DSC_0010`` and ``DSC_0011``; not ``Wedding_001`` and ``DSC_0010``)."""
    ma, mb = _COUNTER.fullmatch(_stem(a)), _COUNTER.fullmatch(_stem(b))
    return bool(ma and mb and ma.group(1) == mb.group(1) and ma.group(2) != mb.group(2))


def raw_and_its_rendition(a: FileRecord, b: FileRecord) -> bool:
    """A RAW and the camera's own JPEG/HEIC of that exposure, wherever they are: one stem,
    one capture time, one camera. Grouping pairs them only within a folder; a camera that
    writes RAW to one card and JPEG to the other, or an import that sorts by type
    (``RAW/`` and ``JPG/``), puts them apart, and they are versions, not duplicates."""
    if (a.kind == "raw") == (b.kind == "raw") or a.taken_at is None or a.taken_at != b.taken_at:
        return False
    return _stem(a.path) == _stem(b.path) and not cameras_differ(a, b)


# A bucket of more files of one stem and capture second than this is no camera's RAW and
# renditions (a chat export's "image.jpg" files, names made from a time stamp): it pairs
# nothing, and costs nothing (4,000 such files would make 8 million pairs).
MAX_RENDITION_BUCKET = 64


def rendition_partners(files: Iterable[FileRecord]) -> dict[int, tuple[int, ...]]:
    """file id -> ids of the files it is a RAW-and-rendition pair with
    (``raw_and_its_rendition``): a RAW's renditions, a rendition's RAWs. Found by
    bucketing on stem and capture time; a bucket above ``MAX_RENDITION_BUCKET`` files
    is left out."""
    buckets: dict[tuple[str, object], list[FileRecord]] = {}
    for f in files:
        if f.taken_at is not None:
            buckets.setdefault((_stem(f.path), f.taken_at), []).append(f)
    found: dict[int, list[int]] = {}
    for bucket in buckets.values():
        if len(bucket) > MAX_RENDITION_BUCKET:
            continue
        raws = [f for f in bucket if f.kind == "raw"]
        if not raws or len(raws) == len(bucket):
            continue
        for r in raws:
            for f in bucket:
                if raw_and_its_rendition(r, f):
                    found.setdefault(r.id, []).append(f.id)
                    found.setdefault(f.id, []).append(r.id)
    return {k: tuple(v) for k, v in found.items()}


def names_related(a: str, b: str) -> bool:
    """One file name's stem begins with the other's, case aside: ``IMG_1234.JPG`` and
    ``IMG_1234.jpg``, ``IMG_1234-1.jpg`` or ``IMG_1234 copy.jpg``; not two counters
    (``IMG_1234``, ``IMG_1235``)."""
    sa, sb = _stem(a), _stem(b)
    return bool(sa and sb) and (sa.startswith(sb) or sb.startswith(sa))


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0].casefold()


@dataclass(frozen=True, slots=True)
class Cluster:
    """Files that are the same picture. ``members`` sorted by (path, id);
    ``distances[i][j]`` is the pHash Hamming distance between members i and j;
    ``exact_of[i]`` is the exact group (sha256) member i represents, or None."""

    members: tuple[FileRecord, ...]
    distances: tuple[tuple[int, ...], ...]
    exact_of: tuple[str | None, ...]

    @property
    def max_distance(self) -> int:
        return max(max(row) for row in self.distances)

    @property
    def similarity_score(self) -> float:
        """Similarity of the least similar pair: every pair is at least this similar."""
        return similarity_score(self.max_distance)

    def distance(self, a_id: int, b_id: int) -> int:
        ids = [m.id for m in self.members]
        return self.distances[ids.index(a_id)][ids.index(b_id)]


def _same_group_fn(same_group: SameGroup) -> Callable[[int, int], bool]:
    if same_group is None:
        return lambda a, b: False
    if callable(same_group):
        return same_group
    mapping = same_group

    def fn(a: int, b: int) -> bool:
        ga = mapping.get(a)
        return ga is not None and ga == mapping.get(b)

    return fn


def perceptual_clusters(
    files: Iterable[FileRecord],
    threshold: int,
    same_group: SameGroup = None,
    exact_of: Mapping[int, str] | None = None,
    colour_of: Mapping[int, str] | None = None,
    colour_tolerance: float = COLOUR_TOLERANCE,
    aliases: Mapping[int, tuple[int, ...]] | None = None,
    stand_in: Callable[[Sequence[FileRecord]], int] | None = None,
) -> list[Cluster]:
    """Clusters of two or more files whose pHashes are pairwise within ``threshold``.

    ``same_group``: callable ``(file_id, file_id) -> bool`` or mapping file_id -> file
    group id; pairs in one group are never linked. ``exact_of``: file_id -> exact group
    id; default derived from the files' sha256. ``stand_in``: the id of the member that
    represents an exact group (given its members sorted by path); default the first.
    Returned sorted by first member path.
    """
    usable = [f for f in files if f.phash and informative(f.phash)]
    # A hard link is one file under several names; the one kept stands for all of them,
    # also when the versions rule asks whether it belongs to a file group (an album
    # folder holding a hard link to a JPEG paired with its RAW elsewhere).
    if aliases is None:
        aliases = hard_link_aliases(usable)
    pool = collapse_hard_links(usable)
    if exact_of is None:
        exact_of = exact_index(exact_groups(pool))
    in_group = _same_group_fn(same_group)

    # One representative per exact group; every other record stands alone.
    by_exact: dict[str, list[FileRecord]] = {}
    reps: list[FileRecord] = []
    for f in pool:
        x = exact_of.get(f.id)
        if x:
            by_exact.setdefault(x, []).append(f)
        else:
            reps.append(f)
    rep_members: dict[int, list[FileRecord]] = {}
    for group in by_exact.values():
        group.sort(key=lambda r: (r.path, r.id))
        rep = group[0]
        if stand_in is not None and len(group) > 1:
            chosen = stand_in(group)
            rep = next((r for r in group if r.id == chosen), rep)
        reps.append(rep)
        rep_members[rep.id] = group
    reps.sort(key=lambda r: (r.path, r.id))
    n = len(reps)
    if n < 2:
        return []
    ints = [phash_int(r.phash) for r in reps]  # type: ignore[arg-type]
    hashes = np.array(ints, dtype=np.uint64)
    ii, jj, dd = pairs_within(hashes, threshold)
    ii = np.asarray(ii, dtype=np.int64)
    jj = np.asarray(jj, dtype=np.int64)
    dd = np.asarray(dd, dtype=np.int64)
    lo, hi = np.minimum(ii, jj), np.maximum(ii, jj)
    order = np.lexsort((hi, lo, dd))

    partners = rendition_partners(pool)
    raw_ids = {f.id for f in pool if f.kind == "raw" and f.id in partners}

    def names_of(ids: Iterable[int]) -> list[int]:
        return [i for x in ids for i in aliases.get(x, (x,))]

    def grouped(x: int, ys: Iterable[int]) -> bool:
        """Whether ``x`` shares a file group with any of ``ys`` (under any name)."""
        xs = names_of((x,))
        return any(in_group(i, j) for i in xs for j in names_of(ys))

    def through_a_raw(x: int, y: int) -> bool:
        """Versions through a RAW that ``x`` or ``y`` is or pairs with: one side is the RAW
        or an edit (a member of the RAW's file group or of a rendition's that is no
        rendition itself), the other the RAW, a rendition of it or such an edit. Two
        renditions of one RAW are not: one may be a copy of the other."""
        raws = {z for z in (x, y) if z in raw_ids}
        raws.update(r for z in (x, y) if z not in raw_ids for r in partners.get(z, ()))
        for r in raws:
            px, py = place(x, r), place(y, r)
            if px and py and (px, py) != ("rendition", "rendition"):
                return True
        return False

    def place(z: int, raw: int) -> str | None:
        """What ``z`` is to ``raw``: the RAW, a rendition of it, an edit (in the file group
        of the RAW or of one of its renditions), or nothing."""
        rends = partners[raw]
        if z == raw:
            return "raw"
        if z in rends:
            return "rendition"
        return "edit" if grouped(z, (raw, *rends)) else None

    def versions(a: int, b: int) -> bool:
        ma = rep_members.get(reps[a].id, [reps[a]])
        mb = rep_members.get(reps[b].id, [reps[b]])
        ids_a = names_of(x.id for x in ma)
        ids_b = names_of(y.id for y in mb)
        if any(in_group(i, j) for i in ids_a for j in ids_b):
            return True
        # A RAW and every member of its rendition's file group (the edit of the camera's
        # JPEG in ``JPG/``, the RAW in ``RAW/``) are versions; so are a rendition and an
        # edit in the RAW's group; two renditions of the RAW are not (``through_a_raw``).
        return any(through_a_raw(x.id, y.id) for x in ma for y in mb)

    colours = colour_of or {}

    def colour_differs(a: int, b: int) -> bool:
        ca, cb = colours.get(reps[a].id), colours.get(reps[b].id)
        if not ca or not cb:
            return False
        try:
            return colour_distance(ca, cb) > colour_tolerance
        except ValueError:
            return False

    linked: set[tuple[int, int]] = set()
    edges: list[tuple[int, int]] = []
    for k in order.tolist():
        a, b = int(lo[k]), int(hi[k])
        if a == b or (a, b) in linked or versions(a, b) or colour_differs(a, b):
            continue
        if different_shots(reps[a], reps[b]) or raw_and_its_rendition(reps[a], reps[b]):
            continue
        linked.add((a, b))
        edges.append((a, b))

    cluster_of = list(range(n))
    clusters: dict[int, list[int]] = {}
    for a, b in edges:
        ca, cb = cluster_of[a], cluster_of[b]
        if ca == cb:
            continue
        ma = clusters.get(ca, [ca])
        mb = clusters.get(cb, [cb])
        if not all((min(x, y), max(x, y)) in linked for x in ma for y in mb):
            continue
        if len(ma) < len(mb) or (len(ma) == len(mb) and cb < ca):
            ca, cb, ma, mb = cb, ca, mb, ma
        for y in mb:
            cluster_of[y] = ca
        clusters[ca] = ma + mb
        clusters.pop(cb, None)

    out: list[Cluster] = []
    for idx in clusters.values():
        idx = sorted(idx)  # reps are already in (path, id) order
        members = tuple(reps[k] for k in idx)
        dist = tuple(tuple((ints[a] ^ ints[b]).bit_count() for b in idx) for a in idx)
        ex = tuple(exact_of.get(m.id) if m.id in rep_members else None for m in members)
        out.append(Cluster(members=members, distances=dist, exact_of=ex))
    out.sort(key=lambda c: (c.members[0].path, c.members[0].id))
    return out
