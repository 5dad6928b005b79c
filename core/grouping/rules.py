"""Grouping rules: which files of a folder belong to one shot.

``group_folder(files, policy=..., overrides=...)`` takes the cataloged files of a folder
(``core.records.FileRecord``) and returns plain ``GroupResult``s. It is pure, linear in
the folder size (files are bucketed by normalised shot key; only files sharing a key are
compared) and deterministic: the input order never matters, and every group carries a
``key`` that stays the same as long as its shot does, so the service can match the
groups it stored before.

Rules (within one folder, but for RAW folders; keys are case-insensitive, see
``core.grouping.names``):

* ``raw_jpeg``: a RAW and a JPEG/HEIC/HIF with the same stem (or the same device radical,
  e.g. Pixel ``PXL_<date>_<time>``), capture times within ``RAW_WINDOW`` when both are
  known (camera counters roll over: the same name hours apart is another shot), and not
  from different cameras (serial, or model, when both known). A rendition pairs with at
  most one RAW: candidate pairs are taken best first (known close times before unknown
  times, then the smaller time difference, then by name), one-to-one; a rendition left
  over after that (RAW+JPEG+HIF of one shot) joins the RAW that suits it best.
  Across folders only for RAW folders (``RAW_FOLDERS``: ``trip/RAW/IMG_1.CR3`` with
  ``trip/IMG_1.JPG`` or ``trip/JPG/IMG_1.JPG``): a RAW left without a rendition in its
  own folder pairs with a rendition left without a RAW there, both capture times known.
* ``live_photo``: a HEIC/JPEG still and a MOV/MP4 video with the same stem (or a Pixel
  motion photo as Takeout splits it: ``PXL_<date>_<time>.MP.jpg`` + ``.MP``). Apple's
  ContentIdentifier decides when both files have one (equal: pair, even under different
  names; different: never). Without it, capture times must agree within
  ``LIVE_WINDOW`` or differ by a whole time-zone offset (QuickTime dates are often UTC
  while EXIF is wall-clock), so a counter rollover in a flat export is not a pair.
* ``edited``: ``IMG_E1234.*`` joins ``IMG_1234.*``; ``name-edited``, ``name (edited)``,
  ``name-Edit`` (and Takeout's localised suffixes) join ``name``; Takeout's
  ``name-edited(1)`` joins ``name(1)``. The original is the primary. An edited Live
  Photo (IMG_E1234.HEIC + IMG_E1234.MOV) moves as one.
* sidecars (``name.xmp``, ``name.ext.xmp``, darktable's ``name_01.ext.xmp``,
  ``name.aae``, ``IMG_O1234.aae``, Takeout ``name.ext.json`` and its
  ``.supplemental-metadata`` / ``(1)`` / truncated variants, ``.thm``, ``.dop``, ``.pp3``)
  join the group of the file they describe: the exact full name first, then the original
  of a darktable duplicate, then the shot by stem, then (truncated Takeout JSON only) a
  name with that prefix and the same ``(n)`` index. ``name.xmp`` prefers the RAW, ``.aae``
  the still; ``name.xmp`` beside name.CR3 + name.JPG therefore joins that pair's group. A
  file whose only companions are sidecars forms a ``sidecar`` group. Unmatched sidecars
  stay alone.

Combinations. Every file has at most one parent (rendition -> RAW, video -> still,
edit -> original, sidecar -> its file), so each group is a tree with one root: the RAW
when there is one, else the still / original / image. One group per shot, whose type is
the strongest relation in it: ``raw_jpeg`` > ``live_photo`` > ``edited`` > ``sidecar``.
IMG_1234.CR2 + IMG_1234.JPG + IMG_E1234.JPG + IMG_1234.xmp is one ``raw_jpeg`` group
with roles primary (the JPEG), raw, edit, sidecar.

Roles: the primary member has role ``primary``; the others ``raw``, ``rendition`` (a
JPEG/HEIC that is not the primary, e.g. under policy 'raw'), ``video``, ``edit`` (an
edited copy, or the video of an edited Live Photo) or ``sidecar``.

Primary: policy ``rendition`` (default; Immich shows the primary as the stack cover)
makes the RAW's best rendition the primary of a ``raw_jpeg`` group; policy ``raw`` makes
the RAW primary. Otherwise the root is primary: the still of a Live Photo, the original of
an edit, the file of a sidecar group. A broken file (``FileRecord.broken``: empty, or read
with an error in its content, e.g. a truncated JPEG; not one whose last read merely failed)
is never the primary while a picture or video
of the group is healthy: the best healthy rendition, else the RAW, else the best healthy
member as a manual group's primary is chosen. Only a primary the user named is kept as is.

Manual corrections (``Overrides``): ``forced_apart`` pairs are never put in one group,
nor a byte copy (same SHA-256) of either file with the other: a split is of pictures,
not paths (the next best candidate is tried instead: a JPEG split from one RAW can still
pair with another RAW, but not with a copy of that RAW); ``forced_together`` sets form
one ``manual`` group with the given or a policy-chosen primary, may span folders (the
service must then pass those folders' files together), and win over ``forced_apart``.
Their members take part in no automatic pairing; their sidecars still join them.

Unreadable files: the catalog cannot tell their capture time or camera, and rules
treat unknown values as "no objection", so a broken RAW still pairs with its JPEG by
name. The service should pass such files (as records without metadata, with their
``error``) for that reason. Empty files (size 0) are the exception: the automatic rules
never pair or group them with anything (zero.heic, zero.jpg and zero.CR2 are no shot);
only a manual group may hold one.

Keys: a 32-hex digest of the root's folder and shot key, so a JPEG+XMP group keeps its
key when its RAW arrives later or the policy changes. Only when two groups of one folder
share a shot key (counter rollover) is the root's path mixed in. Manual groups are keyed
by their listed paths.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.grouping import names as N
from core.paths import to_bytes
from core.records import FileRecord

RAW_WINDOW = 2.0  # seconds between a RAW and its rendition
LIVE_WINDOW = 5.0  # seconds between a Live Photo's still and video (video starts ~1.5 s early)
# An edit keeps its original's capture time (Apple, Google, Lightroom exports): two days
# apart (more than any time-zone difference), IMG_E1234 is the edit of another IMG_1234,
# from before the counter rolled over, whose own original is gone.
EDIT_WINDOW = 2 * 86_400.0
_TZ_STEP = 900  # time-zone offsets are whole quarter hours
_TZ_MAX = 14 * 3600

POLICIES = ("rendition", "raw")
GROUP_TYPES = ("raw_jpeg", "live_photo", "edited", "sidecar", "manual")
ROLES = ("primary", "raw", "rendition", "video", "edit", "sidecar")
_ROLE_ORDER = {r: i for i, r in enumerate(ROLES)}

# Edge kinds of the shot tree, strongest first (also the type precedence).
_RAW, _LIVE, _EDIT, _SIDE = "raw", "live", "edit", "sidecar"
_TYPE_OF_EDGE = {_RAW: "raw_jpeg", _LIVE: "live_photo", _EDIT: "edited", _SIDE: "sidecar"}
_EDGE_RANK = {_RAW: 0, _LIVE: 1, _EDIT: 2, _SIDE: 3}


@dataclass(frozen=True, slots=True)
class Member:
    file_id: int
    path: str
    role: str  # one of ROLES
    is_primary: bool


@dataclass(frozen=True, slots=True)
class GroupResult:
    key: str  # stable identity (32 hex) for matching stored groups
    type: str  # one of GROUP_TYPES
    members: tuple[Member, ...]  # primary first, then by role, then by path

    @property
    def primary(self) -> Member:
        return self.members[0]

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(m.path for m in self.members)


@dataclass(frozen=True, slots=True)
class ManualGroup:
    """Files the user put together; ``primary`` (a path) is optional."""

    paths: frozenset[str]
    primary: str | None = None


@dataclass(frozen=True)
class Overrides:
    """The user's corrections, as plain data the service stores and passes back in.

    forced_apart: unordered path pairs that must never share a group (a "split").
    forced_together: groups the user made ("merge"); plain sets of paths are accepted
    and turned into ManualGroup.
    """

    forced_apart: frozenset[frozenset[str]] = frozenset()
    forced_together: tuple[ManualGroup, ...] = field(default=())

    def __post_init__(self) -> None:
        apart = frozenset(frozenset(p) for p in self.forced_apart)
        for pair in apart:
            if len(pair) != 2:
                raise ValueError(f"forced_apart entries are pairs of two paths: {sorted(pair)!r}")
        together = tuple(
            g if isinstance(g, ManualGroup) else ManualGroup(frozenset(g))
            for g in self.forced_together
        )
        object.__setattr__(self, "forced_apart", apart)
        object.__setattr__(self, "forced_together", together)


def split_all(paths: Iterable[str]) -> frozenset[frozenset[str]]:
    """forced_apart pairs that dissolve a group completely (every member from every other)."""
    ps = sorted(set(paths))
    return frozenset(frozenset((a, b)) for i, a in enumerate(ps) for b in ps[i + 1 :])


def split_out(path: str, group_paths: Iterable[str]) -> frozenset[frozenset[str]]:
    """forced_apart pairs that take one file out of its group (the rest stays together)."""
    return frozenset(frozenset((path, p)) for p in set(group_paths) if p != path)


def partition_by_folder(files: Iterable[FileRecord]) -> dict[str, list[FileRecord]]:
    """Files by folder, folders in sorted order, files sorted by path within each."""
    out: dict[str, list[FileRecord]] = defaultdict(list)
    for f in files:
        out[f.folder].append(f)
    return {k: sorted(out[k], key=lambda r: (r.path, r.id)) for k in sorted(out)}


# --------------------------------------------------------------------------- internals


@dataclass(slots=True)
class _F:
    idx: int
    rec: FileRecord
    name: str
    folder: str
    cat: str
    key: str  # shot key
    full: str  # normalised full name
    edit_of: str | None  # shot key of the original when the name is an edited copy's
    edit_chain: tuple[str, ...]  # shot keys it may be the edit of, nearest first
    live_still: bool
    live_video: bool
    sidecar: N.SidecarTargets | None
    order: tuple[str, str]  # deterministic tie-break: normalised path, then raw path
    serial: str
    model: str
    pinned: bool = False  # listed in a manual group: no automatic pairing


def _offset(text: str | None) -> timedelta | None:
    if not text:
        return None
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text.strip())
    if not m:
        return None
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return -delta if m.group(1) == "-" else delta


def seconds_apart(a: FileRecord, b: FileRecord) -> float | None:
    """Absolute capture-time difference in seconds, None when either is unknown.

    Instants are compared when both offsets are known, wall-clock times otherwise.
    """
    if a.taken_at is None or b.taken_at is None:
        return None
    ta: datetime = a.taken_at
    tb: datetime = b.taken_at
    oa, ob = _offset(a.taken_offset), _offset(b.taken_offset)
    if oa is not None and ob is not None:
        ta, tb = ta - oa, tb - ob
    ta, tb = ta.replace(tzinfo=None), tb.replace(tzinfo=None)
    return abs((ta - tb).total_seconds())


_NOT_ALNUM = re.compile(r"[^0-9a-z]")


def _alnum(s: str | None) -> str:
    return _NOT_ALNUM.sub("", s.casefold()) if s else ""


def cameras_differ(a: FileRecord, b: FileRecord) -> bool:
    """True only when both files name a camera and the names disagree.

    Models are compared loosely (one may carry the make in front: 'EOS R6' vs 'Canon EOS
    R6') because RAW and JPEG metadata often come from different readers; a model that
    only starts like another ('NIKON D70' vs 'NIKON D70s') is another camera.
    """
    return _differ(_serial(a), _alnum(a.model), _serial(b), _alnum(b.model))


def _serial(r: FileRecord) -> str:
    return _alnum(r.serial).lstrip("0")


def _differ(sa: str, ma: str, sb: str, mb: str) -> bool:
    if sa and sb and sa != sb:
        return True
    # One may carry the make in front ('canoneosr6' / 'eosr6'); any other difference is
    # another body: 'nikond70' / 'nikond70s', 'canoneosr' / 'canoneosr5'.
    return bool(ma and mb and not ma.endswith(mb) and not mb.endswith(ma))


def _time_rank(d: float | None) -> tuple[int, float]:
    # Known-and-close beats unknown: an unknown time is only "no objection".
    return (1, 0.0) if d is None else (0, d)


def _live_times_agree(d: float | None, instants: bool) -> bool:
    """Still and video within LIVE_WINDOW, or a whole number of quarter hours more when
    ``instants`` is False: one side's wall-clock time may be in another zone (QuickTime
    writes UTC). With both offsets known the instants were compared: no slack then."""
    if d is None or d <= LIVE_WINDOW:
        return True
    if instants or d > _TZ_MAX + LIVE_WINDOW:
        return False
    rest = d % _TZ_STEP
    return rest <= LIVE_WINDOW or _TZ_STEP - rest <= LIVE_WINDOW


def _content_id(r: FileRecord) -> str:
    return (r.content_id or "").strip().casefold()


class _Forest:
    """Union-find plus the shot tree's parent edges, honouring forced-apart pairs."""

    def __init__(self, files: list[_F], apart: dict[int, set[int]]) -> None:
        self.up = list(range(len(files)))
        self.members: list[list[int]] = [[i] for i in range(len(files))]
        self.apart = apart
        self.parent: dict[int, tuple[int, str]] = {}  # child -> (parent, edge kind)
        self.score: dict[int, tuple] = {}  # child -> rank of its edge (best rendition)
        self.has_video: set[int] = set()  # stills that already have their Live Photo video

    def find(self, i: int) -> int:
        while self.up[i] != i:
            self.up[i] = self.up[self.up[i]]
            i = self.up[i]
        return i

    def _allowed(self, ra: int, rb: int) -> bool:
        small, big = (ra, rb) if len(self.members[ra]) <= len(self.members[rb]) else (rb, ra)
        for m in self.members[small]:
            for other in self.apart.get(m, ()):
                if self.find(other) == big:
                    return False
        return True

    def join(self, a: int, b: int, *, force: bool = False) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if not force and not self._allowed(ra, rb):
            return False
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.up[rb] = ra
        self.members[ra].extend(self.members[rb])
        self.members[rb] = []
        return True

    def attach(self, child: int, parent: int, kind: str, score: tuple = ()) -> bool:
        """Make ``parent`` the tree parent of ``child`` (a tree root) if allowed."""
        if child in self.parent or not self.join(child, parent):
            return False
        self.parent[child] = (parent, kind)
        self.score[child] = score
        if kind == _LIVE:
            self.has_video.add(parent)
        return True


def _prepare(files: Sequence[FileRecord]) -> list[_F]:
    seen: dict[str, FileRecord] = {}
    for r in files:
        if r.path not in seen or r.id < seen[r.path].id:
            seen[r.path] = r
    out: list[_F] = []
    for path in sorted(seen):
        r = seen[path]
        folder, _, name = path.rpartition(os.sep)
        st, ext = N.split_ext(name)
        cat = N.category_of_ext(ext, r.kind, r.format)
        base = N.edit_base(st)
        out.append(
            _F(
                idx=len(out),
                rec=r,
                name=name,
                folder=folder if folder or not path.startswith(os.sep) else os.sep,
                cat=cat,
                key=N.norm(st) if base is not None else _own_key(st, cat),
                full=N.norm(name),
                edit_of=N.stem_key(base) if base is not None else None,
                # each as that file's own key: an edit's is its full stem, not a radical
                edit_chain=tuple(
                    N.norm(b) if N.edit_base(b) is not None else N.stem_key(b)
                    for b in N.edit_chain(st)
                ),
                live_still=cat == N.RENDITION and N.is_live_still(name, r.format),
                live_video=cat == N.VIDEO and N.is_live_video(name, r.format),
                sidecar=N.sidecar_targets(name) if cat == N.SIDECAR else None,
                order=(N.norm(path), path),
                serial=_serial(r),
                model=_alnum(r.model),
            )
        )
    return out


def _pair_raws(forest: _Forest, bucket: list[_F]) -> None:
    raws = [f for f in bucket if f.cat == N.RAW]
    rends = [f for f in bucket if f.cat == N.RENDITION and f.edit_of is None]
    if not raws or not rends:
        return
    edges = sorted(e for rd in rends for rw in raws if (e := _raw_edge(rd, rw, known_times=False)))
    paired_raws: set[int] = set()
    for score, child, raw in edges:  # one-to-one first
        if raw not in paired_raws and forest.attach(child, raw, _RAW, score):
            paired_raws.add(raw)
    for score, child, raw in edges:  # then leftover renditions of a shot with several
        forest.attach(child, raw, _RAW, score)


# Folders a camera, an import tool or a photographer keeps the RAW files in, beside (or
# below) the JPEGs of the same shots: "2024/trip/RAW/IMG_1.CR3" with "2024/trip/IMG_1.JPG"
# or "2024/trip/JPG/IMG_1.JPG". Exactly these spellings: the grouping service finds a
# folder's companions by their names' keys, so the rules must accept no other (a
# spelling only the rules knew would pair or not by which folders a batch held).
def _spellings(*bases: str) -> frozenset[str]:
    """raw, RAW, Raw; each plain, plural or "files" (raws, RAWs, RAW Files, raw_files …)."""
    out: set[str] = set()
    for base in bases:
        for b in (base, base.upper(), base.capitalize()):
            for suffix in ("", "s", "S", " files", " Files", " FILES"):
                out.add(b + suffix)
                if suffix.startswith(" "):
                    out.update((b + "_" + suffix[1:], b + "-" + suffix[1:]))
    return frozenset(out)


RAW_FOLDERS = _spellings("raw")
JPEG_FOLDERS = _spellings("jpg", "jpeg")
_RAW_SPELLINGS = sorted(RAW_FOLDERS)
_JPEG_SPELLINGS = sorted(JPEG_FOLDERS)


def companion_folders(folder: str) -> list[str]:
    """The folders whose files ``folder``'s may pair with across folders (``RAW_FOLDERS``):
    its RAW subfolders; for a RAW folder, the folder holding it and its JPEG siblings; for
    a JPEG folder, its RAW siblings. Candidates by name: which exist is the caller's to
    find (the grouping service ties the ones that do into one batch)."""
    parent, _, name = folder.rpartition(os.sep)
    parent = parent or os.sep
    out = [os.path.join(folder, n) for n in _RAW_SPELLINGS]
    if name in RAW_FOLDERS:
        out.append(parent)
        out.extend(os.path.join(parent, n) for n in _JPEG_SPELLINGS)
    elif name in JPEG_FOLDERS:
        out.extend(os.path.join(parent, n) for n in _RAW_SPELLINGS)
    return out


def _pair_raw_folders(forest: _Forest, folders: dict[str, list[_F]]) -> None:
    """A RAW left without a rendition in a RAW folder pairs with a rendition left without
    a RAW in the folder holding it or a JPEG sibling, by the same shot key. Stricter than
    within a folder: both capture times must be known and within ``RAW_WINDOW``, and the
    cameras must not differ (the same name in two folders is often another shot)."""
    for folder in sorted(folders):
        parent, _, name = folder.rpartition(os.sep)
        if name not in RAW_FOLDERS:
            continue
        parent = parent or os.sep
        partners = [parent] + [
            f for f in folders if f.rpartition(os.sep)[0] == parent and f != folder
            and f.rpartition(os.sep)[2] in JPEG_FOLDERS
        ]  # fmt: skip
        raws: dict[str, list[_F]] = defaultdict(list)
        for f in folders[folder]:
            if f.cat == N.RAW and not f.pinned and f.edit_of is None and not _paired(forest, f):
                raws[f.key].append(f)
        edges: list[tuple[tuple, int, int]] = []
        for other in partners:
            for rd in folders.get(other, ()):
                if rd.cat != N.RENDITION or rd.pinned or rd.edit_of is not None:
                    continue
                if rd.idx in forest.parent:  # a rendition a RAW has is that RAW's child
                    continue
                edges.extend(
                    e for rw in raws.get(rd.key, ()) if (e := _raw_edge(rd, rw, known_times=True))
                )
        edges.sort()
        paired: set[int] = set()
        for score, child, raw in edges:  # one-to-one
            if raw not in paired and child not in forest.parent:
                if forest.attach(child, raw, _RAW, score):
                    paired.add(raw)


def _paired(forest: _Forest, raw: _F) -> bool:
    """Whether ``raw`` has a rendition of its own already (a RAW pair's edge to it), not
    merely an edit saved beside it (``IMG_1-Edit.JPG`` in RAW/ is no camera JPEG)."""
    return any(
        forest.parent.get(i, (None, ""))[:2] == (raw.idx, _RAW)
        for i in forest.members[forest.find(raw.idx)]
    )


def _raw_edge(rd: _F, rw: _F, *, known_times: bool) -> tuple[tuple, int, int] | None:
    """The candidate pair of rendition ``rd`` and RAW ``rw`` as (rank, rendition, RAW),
    or None: capture times more than ``RAW_WINDOW`` apart (or, with ``known_times``, not
    both known), or two cameras."""
    d = seconds_apart(rd.rec, rw.rec)
    if (d is None and known_times) or (d is not None and d > RAW_WINDOW):
        return None
    if _differ(rd.serial, rd.model, rw.serial, rw.model):
        return None
    return (*_time_rank(d), rw.order, rd.order), rd.idx, rw.idx


def _pair_live(
    forest: _Forest,
    stills: list[_F],
    videos: list[_F],
    by_id: bool,
    video_ids: frozenset[str] = frozenset(),
) -> None:
    """``video_ids``: the content identifiers of the folder's videos. A still whose
    identifier one of them carries waits for that video (the ContentIdentifier pass)
    rather than take a same-named video without one (icloudpd saves the Live Photo's as
    IMG_1234_HEVC.MOV beside a plain IMG_1234.MOV)."""
    edges = []
    for v in videos:
        for s in stills:
            ca, cb = _content_id(s.rec), _content_id(v.rec)
            if ca and cb:
                if ca != cb:
                    continue
                rank: tuple = (0, 0.0)
            elif by_id or ca in video_ids:
                continue
            else:
                d = seconds_apart(s.rec, v.rec)
                both = _offset(s.rec.taken_offset) is not None and (
                    _offset(v.rec.taken_offset) is not None
                )
                if not _live_times_agree(d, both) or cameras_differ(s.rec, v.rec):
                    continue
                rank = (1, *_time_rank(d))
            still_pref = 0 if s.name.rsplit(".", 1)[-1].lower() in ("heic", "heif") else 1
            edges.append(((*rank, still_pref, s.order, v.order), s.idx, v.idx))
    edges.sort()
    for score, still, video in edges:
        if still not in forest.has_video:
            forest.attach(video, still, _LIVE, score)


def _attach_edits(forest: _Forest, files: list[_F], buckets: dict[str, list[_F]]) -> None:
    for f in files:
        if f.edit_of is None or f.pinned or f.cat not in (N.RENDITION, N.IMAGE, N.VIDEO, N.RAW):
            continue
        if f.idx in forest.parent:
            continue  # already part of a RAW pair / Live Photo of its own stem
        wanted = (
            (N.VIDEO,)
            if f.cat == N.VIDEO
            # a DNG made from a RAW (Lightroom's Enhance) is an edit of that RAW
            else (N.RAW, N.RENDITION, N.IMAGE)
            if f.cat == N.RAW
            else (N.RENDITION, N.IMAGE, N.RAW)
        )
        cands = []
        for t in buckets.get(f.edit_of, ()):
            if t.cat not in wanted or t.idx == f.idx:
                continue
            d = seconds_apart(f.rec, t.rec)
            if d is not None and d > EDIT_WINDOW:
                continue
            cands.append(((wanted.index(t.cat), *_time_rank(d), t.order), t.idx))
        for score, target in sorted(cands):
            if forest.attach(f.idx, target, _EDIT, score):
                break


def _attach_sidecars(
    forest: _Forest,
    files: list[_F],
    by_full: dict[str, list[_F]],
    by_key: dict[str, list[_F]],
    sorted_fulls: list[str],
) -> None:
    for f in files:
        spec = f.sidecar
        if spec is None or f.pinned:
            continue
        found: list[tuple[int, _F]] = []
        for full in spec.full_names:
            found.extend((0, t) for t in by_full.get(full, ()))
        for full in spec.version_of:
            found.extend((1, t) for t in by_full.get(full, ()))
        for key in spec.stem_keys:
            found.extend((3, t) for t in by_key.get(key, ()))
        if spec.prefix:
            cut = {t.idx: t for t in _truncated_matches(spec, by_full, sorted_fulls)}
            if not found:
                found.extend((4, t) for t in cut.values())
            else:
                # A stem may be a device radical that names every file of one shot (Pixel
                # PXL_..., COVER and ORIGINAL alike): the cut name says which one
                found = [(2 if tier == 3 and t.idx in cut else tier, t) for tier, t in found]
        ranked = sorted(
            {
                (
                    tier,
                    spec.preference.index(t.cat) if t.cat in spec.preference else 9,
                    *_time_rank(seconds_apart(f.rec, t.rec)),
                    t.order,
                    t.idx,
                )
                for tier, t in found
            }
        )
        for *_, target in ranked:
            if forest.attach(f.idx, target, _SIDE):
                break


def _truncated_matches(
    spec: N.SidecarTargets, by_full: dict[str, list[_F]], sorted_fulls: list[str]
) -> Iterable[_F]:
    """Files whose full name starts with a truncated Takeout JSON's prefix and carries
    its uniqueness index (bisect over the sorted names: no scan of the folder)."""
    prefix = spec.prefix or ""
    i = bisect.bisect_left(sorted_fulls, prefix)
    while i < len(sorted_fulls) and sorted_fulls[i].startswith(prefix):
        if N.takeout_index_agrees(sorted_fulls[i], prefix, spec.index):
            yield from by_full[sorted_fulls[i]]
        i += 1


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(to_bytes(p))
        h.update(b"\x00")
    return h.hexdigest()


def _manual_groups(
    files: list[_F], overrides: Overrides
) -> list[tuple[list[int], str | None, str]]:
    """Present members (indices), requested primary and key of each manual group;
    groups sharing a file are merged."""
    index = {f.rec.path: f.idx for f in files}
    specs = sorted(overrides.forced_together, key=lambda g: (sorted(g.paths), g.primary or ""))
    # Merge specs that share paths (by path, so absent files still connect them).
    owner: dict[str, int] = {}
    merged: list[list[ManualGroup]] = []
    for g in specs:
        hits = sorted({owner[p] for p in g.paths if p in owner})
        if not hits:
            merged.append([g])
            target = len(merged) - 1
        else:
            target = hits[0]
            merged[target].append(g)
            for h in hits[1:]:
                merged[target].extend(merged[h])
                merged[h] = []
        for gg in merged[target]:
            for p in gg.paths:
                owner[p] = target
    out = []
    for gs in merged:
        if not gs:
            continue
        all_paths = sorted({p for g in gs for p in g.paths})
        for p in all_paths:
            if p in index:
                files[index[p]].pinned = True
        present = [index[p] for p in all_paths if p in index]
        primaries = sorted(
            g.primary for g in gs if g.primary and g.primary in g.paths and g.primary in index
        )
        out.append((present, primaries[0] if primaries else None, _digest("manual", *all_paths)))
    return out


def _natural_role(f: _F) -> str:
    if f.cat == N.SIDECAR:
        return "sidecar"
    if f.edit_of is not None:
        return "edit"
    if f.cat == N.RAW:
        return "raw"
    if f.cat == N.VIDEO:
        return "video"
    return "rendition"


def _manual_primary(members: list[_F], policy: str) -> _F:
    order = (
        (N.RENDITION, N.IMAGE, N.RAW, N.VIDEO, N.OTHER, N.SIDECAR)
        if policy == "rendition"
        else (N.RAW, N.RENDITION, N.IMAGE, N.VIDEO, N.OTHER, N.SIDECAR)
    )
    return min(members, key=lambda f: (f.edit_of is not None, order.index(f.cat), f.order))


def _healthy_primary(members: list[_F], policy: str) -> _F | None:
    """The primary of a group whose natural one is broken (``FileRecord.broken``:
    zero-byte, truncated, corrupt): the best member the catalog read whole, as a manual
    group's is chosen; None when no picture or video of the group is healthy. A sidecar
    is never a cover."""
    healthy = [f for f in members if not f.rec.broken and f.cat not in (N.SIDECAR, N.OTHER)]
    return _manual_primary(healthy, policy) if healthy else None


def _member_order(m: Member) -> tuple:
    return (not m.is_primary, _ROLE_ORDER[m.role], N.norm(m.path), m.path)


# --------------------------------------------------------------------------- public API


def group_folder(
    files: Sequence[FileRecord],
    *,
    policy: str = "rendition",
    overrides: Overrides | None = None,
) -> list[GroupResult]:
    """Groups (two or more members) among ``files``.

    ``files`` is every cataloged file of one folder; several folders may be passed at
    once (automatic rules stay within a folder, but for a RAW folder's RAWs and the
    JPEGs of its ``companion_folders``, when passed together; manual groups may cross
    any). Files not in any
    result are ungrouped. Results are sorted by primary path. Raises ValueError for an
    unknown policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown primary policy {policy!r}; expected one of {POLICIES}")
    overrides = overrides or Overrides()
    fs = _prepare(files)
    index = {f.rec.path: f.idx for f in fs}
    forest = _Forest(fs, _apart(fs, index, overrides.forced_apart))

    manual = _manual_groups(fs, overrides)
    manual_of: dict[int, int] = {}
    for n, (present, _, _) in enumerate(manual):
        if len(present) >= 2:
            for i in present:
                manual_of[i] = n
                forest.join(present[0], i, force=True)

    folders: dict[str, list[_F]] = defaultdict(list)
    for f in fs:
        if f.rec.size > 0:  # an empty file is no version, still, video or sidecar of anything
            folders[f.folder].append(f)
    for folder in sorted(folders):
        _group_one_folder(forest, folders[folder])
    _pair_raw_folders(forest, folders)

    results = _collect(forest, fs, manual, manual_of, policy)
    results.sort(key=lambda g: (N.norm(g.primary.path), g.primary.path, g.key))
    return results


def _apart(
    fs: list[_F], index: dict[str, int], pairs: frozenset[frozenset[str]]
) -> dict[int, set[int]]:
    """Each file's forced-apart partners (by index). A split is of pictures, not paths:
    a byte copy of either file (same SHA-256) is kept apart too, or the RAW split from
    ``JPG/IMG_1.JPG`` would pair with the copy in the folder above as its next best."""
    copies: dict[str, list[int]] = defaultdict(list)
    for f in fs:
        if f.rec.sha256:
            copies[f.rec.sha256].append(f.idx)

    def same(i: int) -> list[int]:
        sha = fs[i].rec.sha256
        return copies[sha] if sha else [i]

    apart: dict[int, set[int]] = defaultdict(set)
    for pair in pairs:
        a, b = sorted(pair)
        if a in index and b in index:
            for x in same(index[a]):
                for y in same(index[b]):
                    if x != y:
                        apart[x].add(y)
                        apart[y].add(x)
    return apart


def _resolve_edits(ffs: list[_F]) -> None:
    """Each edited copy becomes the edit of the nearest stem of its chain that a file
    here stands for; an edit-like name with none is an ordinary file ("photo-edit.jpg"
    beside "photo-edit.cr2" is a RAW pair, not an orphaned edit). An edit whose own
    original is gone may stand for the edits of it (name-HDR.dng, name-HDR-Edit.tif
    without the bracket frames): such files become originals first, until none changes."""
    media = [f for f in ffs if f.cat not in (N.SIDECAR, N.OTHER)]
    while True:
        own = {f.key for f in media if f.edit_of is None}
        pending = {f.key for f in media if f.edit_of is not None}
        orphans = [
            f
            for f in ffs
            if f.edit_of is not None and not any(k in own or k in pending for k in f.edit_chain)
        ]
        if not orphans:
            break
        for f in orphans:
            _as_original(f)
    for f in ffs:  # (``own`` is the last round's: no file changed since)
        if f.edit_of is not None:
            # (an ancestor of every pending edit is here: it is in each chain after it)
            f.edit_of = next((k for k in f.edit_chain if k in own), None)
            if f.edit_of is None:
                _as_original(f)


def _own_key(stem: str, cat: str) -> str:
    """The shot key of a file that is no edit (N.shot_key), a Live Photo video's "_HEVC"
    aside."""
    return N.stem_key(N.live_video_stem(stem) if cat == N.VIDEO else stem)


def _as_original(f: _F) -> None:
    """An edit-like name whose original is not here: an ordinary file of its own shot."""
    f.edit_of = None
    f.key = _own_key(N.stem(f.name), f.cat)


def _group_one_folder(forest: _Forest, ffs: list[_F]) -> None:
    _resolve_edits(ffs)
    pairing: dict[str, list[_F]] = defaultdict(list)  # automatic pairing: unpinned media
    hosts: dict[str, list[_F]] = defaultdict(list)  # sidecar hosts: all media
    by_full: dict[str, list[_F]] = defaultdict(list)
    for f in ffs:
        if f.cat in (N.SIDECAR, N.OTHER):
            continue
        hosts[f.key].append(f)
        by_full[f.full].append(f)
        if not f.pinned:
            pairing[f.key].append(f)
    for key in sorted(pairing):
        _pair_raws(forest, pairing[key])
    video_ids = frozenset(_content_id(f.rec) for f in ffs if f.live_video) - {""}
    for key in sorted(pairing):
        b = pairing[key]
        _pair_live(
            forest,
            [f for f in b if f.live_still],
            [f for f in b if f.live_video],
            by_id=False,
            video_ids=video_ids,
        )
    # Renamed Live Photos: an equal ContentIdentifier pairs whatever the names.
    stills = [f for f in ffs if f.live_still and not f.pinned and f.edit_of is None]
    videos = [
        f
        for f in ffs
        if f.live_video and not f.pinned and f.edit_of is None and f.idx not in forest.parent
    ]
    if stills and videos:
        ids: dict[str, tuple[list[_F], list[_F]]] = defaultdict(lambda: ([], []))
        for s in stills:
            if _content_id(s.rec):
                ids[_content_id(s.rec)][0].append(s)
        for v in videos:
            if _content_id(v.rec):
                ids[_content_id(v.rec)][1].append(v)
        for cid in sorted(ids):
            ss, vs = ids[cid]
            if ss and vs:
                _pair_live(forest, ss, vs, by_id=True)
    _attach_edits(forest, ffs, pairing)
    _attach_sidecars(forest, ffs, by_full, hosts, sorted(by_full))


def _collect(
    forest: _Forest,
    fs: list[_F],
    manual: list[tuple[list[int], str | None, str]],
    manual_of: dict[int, int],
    policy: str,
) -> list[GroupResult]:
    comps: dict[int, list[int]] = defaultdict(list)
    for f in fs:
        comps[forest.find(f.idx)].append(f.idx)
    autos: list[tuple[str, str, str, str, list[Member]]] = []  # type, folder, key, root, members
    out: list[GroupResult] = []
    for idxs in comps.values():
        if len(idxs) < 2:
            continue
        idxs.sort()
        members = [fs[i] for i in idxs]
        mans = sorted({manual_of[i] for i in idxs if i in manual_of})
        if mans:
            _, wanted, key = manual[mans[0]]
            prim = fs[next(i for i in idxs if fs[i].rec.path == wanted)] if wanted else None
            if prim is None:  # (a primary the user named stays: the user said so)
                listed = [fs[i] for i in idxs if i in manual_of]
                prim = _manual_primary(listed, policy)
                if prim.rec.broken:
                    prim = _healthy_primary(listed, policy) or prim
            ms = [
                Member(
                    f.rec.id, f.rec.path, "primary" if f is prim else _natural_role(f), f is prim
                )
                for f in members
            ]
            out.append(GroupResult(key, "manual", tuple(sorted(ms, key=_member_order))))
            continue
        roots = [f for f in members if f.idx not in forest.parent]
        root = roots[0]  # a tree has exactly one
        kinds = {forest.parent[f.idx][1] for f in members if f.idx in forest.parent}
        gtype = _TYPE_OF_EDGE[min(kinds, key=_EDGE_RANK.__getitem__)]
        primary = root
        if gtype == "raw_jpeg" and policy == "rendition" and root.cat == N.RAW:
            rends = [
                f for f in members if forest.parent.get(f.idx, (None, ""))[:2] == (root.idx, _RAW)
            ]
            if rends:
                # the best rendition the catalog read whole; none: the RAW, unless it
                # is broken too
                healthy = [f for f in rends if not f.rec.broken]
                if healthy or root.rec.broken:
                    primary = min(healthy or rends, key=lambda f: forest.score[f.idx])
        if primary.rec.broken:
            primary = _healthy_primary(members, policy) or primary
        ms = [
            Member(f.rec.id, f.rec.path, _auto_role(forest, fs, f, primary), f is primary)
            for f in members
        ]
        autos.append((gtype, root.folder, root.key, root.rec.path, ms))
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for _, folder, key, _, _ in autos:
        seen[(folder, key)] += 1
    for gtype, folder, key, root_path, ms in autos:
        parts = (
            ("auto", folder, key) if seen[(folder, key)] == 1 else ("auto", folder, key, root_path)
        )
        out.append(GroupResult(_digest(*parts), gtype, tuple(sorted(ms, key=_member_order))))
    return out


def _auto_role(forest: _Forest, fs: list[_F], f: _F, primary: _F) -> str:
    if f is primary:
        return "primary"
    if f.cat == N.SIDECAR:
        return "sidecar"
    # An edited copy, or anything hanging below one (the video of an edited Live Photo).
    i = f.idx
    while i in forest.parent:
        p, kind = forest.parent[i]
        if kind == _EDIT:
            return "edit"
        i = p
    if f.cat == N.RAW:
        return "raw"
    if f.idx in forest.parent and forest.parent[f.idx][1] == _LIVE:
        return "video"
    return "rendition"
