"""Tables. Schema changes go through Alembic (alembic/versions) only.

The seed tables (file_groups, group_members, duplicate_groups, duplicate_members)
keep their seed column names; everything else is Twinlens's own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, BigId, FsPath, Message


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


class Root(Base):
    """A library root that has been scanned."""

    __tablename__ = "roots"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(FsPath, nullable=False)
    path_key: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class File(Base):
    """The catalog: one row per file ever seen under a root."""

    __tablename__ = "files"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("roots.id"), nullable=False)
    path: Mapped[str] = mapped_column(FsPath, nullable=False)
    path_key: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    dir_key: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    device: Mapped[int] = mapped_column(BigInteger, nullable=False)
    inode: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    format: Mapped[str | None] = mapped_column(String(16))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    sha1: Mapped[str | None] = mapped_column(String(40), index=True)
    quick: Mapped[str | None] = mapped_column(String(64))
    phash: Mapped[str | None] = mapped_column(String(16))
    colour: Mapped[str | None] = mapped_column(String(96))
    taken_at: Mapped[datetime | None] = mapped_column(DateTime)
    taken_offset: Mapped[str | None] = mapped_column(String(8))
    make: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(128))
    serial: Mapped[str | None] = mapped_column(String(128))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    orientation: Mapped[int | None] = mapped_column(Integer)
    content_id: Mapped[str | None] = mapped_column(String(128))
    # A JPEG's quality (1-100, libjpeg's scale) estimated from its luminance quantisation
    # table (core.media.decode.jpeg_quality); None for other files and rows read before
    # it was stored. The keeper's "jpeg_quality" rule compares it.
    jpeg_quality: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Message)
    warning: Mapped[str | None] = mapped_column(Message)
    # Reads of the file that failed in a row (a permission, an I/O error, a share that
    # timed out): ``error`` says why, the facts of the read before are kept, and later
    # scans read it again whatever its stat says (a chmod or a healed share changes no
    # mtime), less often the more it failed (core.catalog.retry_due).
    read_failures: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    # present | missing: a deleted file is marked, not dropped, so history and
    # resolutions that name it stay readable.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="present")
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)

    __table_args__ = (
        Index("ix_files_device_inode", "device", "inode"),
        Index("ix_files_size", "size"),
        Index("ix_files_root_status", "root_id", "status"),
        # What changed since grouping's watermark (core.grouping.watermark), asked at
        # every scan's finish
        Index("ix_files_root_id_updated_at", "root_id", "updated_at"),
    )


class Job(Base):
    """A unit of work people can watch: a scan, a grouping pass, a dedup pass."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # scan | group | dedup
    root_id: Mapped[int | None] = mapped_column(ForeignKey("roots.id"))
    path: Mapped[str | None] = mapped_column(FsPath)
    # The scan whose finish started this grouping or dedup job (its report's "passes").
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # queued | running | done | failed | cancelled
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    trigger: Mapped[str] = mapped_column(String(16), nullable=False, default="cli")
    full: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    done: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bytes_read: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    batches_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    batches_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Catalog scan phases: plan -> catalog -> hash -> finish.
    phase: Mapped[str] = mapped_column(String(16), nullable=False, default="plan")
    summary: Mapped[str | None] = mapped_column(Text)  # JSON: counts by outcome
    error: Mapped[str | None] = mapped_column(Message)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)

    __table_args__ = (Index("ix_jobs_kind_state", "kind", "state"),)


class JobBatch(Base):
    """One message's worth of files. Its state makes redelivery count once."""

    __tablename__ = "job_batches"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    phase: Mapped[str] = mapped_column(String(16), nullable=False, default="catalog")
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    payload: Mapped[str] = mapped_column(Text, nullable=False)  # JSON, ASCII-escaped paths
    files: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Deliveries that died with their process (a worker killed, out of memory on a huge
    # picture) while reading this batch, and the process the latest went to
    # (jobs.begin_attempt)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    delivered_to: Mapped[str | None] = mapped_column(String(200))


class JobError(Base):
    """A file a job could not read, with the reason."""

    __tablename__ = "job_errors"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(FsPath, nullable=False)
    path_key: Mapped[str] = mapped_column(String(32), nullable=False)
    error: Mapped[str] = mapped_column(Message, nullable=False)

    __table_args__ = (Index("ix_job_errors_job_path", "job_id", "path_key", unique=True),)


class SuspectFile(Base):
    """A file being read when an embedded Twinlens process died (a decoder crash, out of
    memory on a huge picture): read alone, marked while it is read, until it has stopped
    the process ``core.suspects.LIMIT`` times; then skipped until it changes."""

    __tablename__ = "suspect_files"
    path_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, nullable=False)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    crashes: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    reading: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class Lease(Base):
    """A named lock with an expiry: one scheduler, one watcher per library."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class FileGroup(Base):
    """Files that belong together: RAW+JPEG, Live Photo, edit, sidecars, manual."""

    __tablename__ = "file_groups"
    group_id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    group_type: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    # Deterministic identity from the rules, so a regroup updates instead of churning ids.
    group_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    dir_key: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="auto")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class GroupMember(Base):
    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("file_groups.group_id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), primary_key=True)
    file_path: Mapped[str] = mapped_column(FsPath, nullable=False)
    file_type: Mapped[str] = mapped_column(String(16), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="member")
    is_primary: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    file_size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)

    # A file belongs to at most one group.
    __table_args__ = (Index("ix_group_members_file", "file_id", unique=True),)


class GroupOverride(Base):
    """A manual correction that later scans respect: split files apart, or merge them."""

    __tablename__ = "group_overrides"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # split | merge
    dir_key: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    members: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of paths (ASCII-escaped)
    primary_path: Mapped[str | None] = mapped_column(FsPath)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class DuplicateGroup(Base):
    """Files that are the same picture: exact (bytes) or perceptual (pixels)."""

    __tablename__ = "duplicate_groups"
    group_id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    duplicate_type: Mapped[str] = mapped_column(String(16), nullable=False)  # exact | perceptual
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    group_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # open | resolved | dismissed
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    similarity: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    keeper_file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"))
    keeper_reason: Mapped[str | None] = mapped_column(String(32))
    reclaimable_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)

    __table_args__ = (Index("ix_duplicate_groups_type_status", "duplicate_type", "status"),)


class DuplicateMember(Base):
    __tablename__ = "duplicate_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("duplicate_groups.group_id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), primary_key=True, index=True)
    file_path: Mapped[str] = mapped_column(FsPath, nullable=False)
    file_hash: Mapped[str | None] = mapped_column(String(64))
    perceptual_hash: Mapped[str | None] = mapped_column(String(16))
    similarity_score: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    file_size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class DuplicateResolution(Base):
    """A user's decision on a duplicate group; kept by group_key across rescans."""

    __tablename__ = "duplicate_resolutions"
    # Undo names a decision by id: SQLite must never hand a withdrawn one's to the next
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_key: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    group_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # trash | not_duplicate
    keep: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of paths
    members: Mapped[str] = mapped_column(Text, nullable=False, default="[]")  # JSON list of paths
    # JSON list of {"path", "sha1"}: what the gateway sent to Immich's trash for it (null
    # for decisions recorded before this was kept, and for not_duplicate)
    trashed: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
