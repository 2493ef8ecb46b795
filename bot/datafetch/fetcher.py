"""Bring each requested file up to date: fetch only what is missing, commit atomically.

One job per (symbol, kind) file. A job reads what is on disk and fetches at most two
segments: the *head* before the first row on disk, when the range starts earlier, and the
*tail* after the last row on disk (continuing from its timestamp). The file stays one
contiguous run of rows, strictly increasing, never duplicated.

Commits rewrite the whole file atomically (files.write_atomic): the tail every
`commit_every_pages` pages and when the job ends, fails or is cancelled; the head only once
complete, since a partial head would leave a hole no later run would notice. Only closed
bars are written (open time + 1h <= now), so a resumed run never has to rewrite a row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from bot.backtest.series import HOUR_MS, hour_floor, to_ms
from bot.datafetch.files import OnDisk, path_for, read_existing, write_atomic
from bot.datafetch.request import FetchRequest, Kind, SymbolSpec
from bot.datafetch.rows import Row
from bot.datafetch.source import HistorySource
from bot.errors import BadResponseError, CarrybotError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Paging, commit frequency and parallelism of a fetch."""

    page_limit: int = 1000
    commit_every_pages: int = 20
    concurrency: int = 4


@dataclass(frozen=True, slots=True)
class Segment:
    """A missing span [start_ms, end_ms): `head` before the rows on disk, else after them."""

    start_ms: int
    end_ms: int
    head: bool = False

    @property
    def length_ms(self) -> int:
        return max(0, self.end_ms - self.start_ms)


@dataclass(frozen=True, slots=True)
class Job:
    """One file to bring up to date."""

    symbol: SymbolSpec
    kind: Kind
    path: Path
    on_disk: OnDisk | None
    segments: tuple[Segment, ...]

    @property
    def label(self) -> str:
        return f"{self.symbol.stem} {self.kind}"

    @property
    def total_ms(self) -> int:
        return sum(s.length_ms for s in self.segments)


class Status(StrEnum):
    FETCHED = "fetched"
    UP_TO_DATE = "up to date"
    NO_DATA = "no data"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobResult:
    """What a job left on disk, and the error that stopped it, if any."""

    job: Job
    added: int
    rows: int
    first_ms: int | None
    last_ms: int | None
    error: CarrybotError | None = None

    @property
    def status(self) -> Status:
        if self.error is not None:
            return Status.FAILED
        if self.rows == 0:
            return Status.NO_DATA
        return Status.FETCHED if self.added else Status.UP_TO_DATE


class Progress(Protocol):
    """Receives progress; `done_ms` counts the part of `job.total_ms` already covered."""

    def add(self, job: Job) -> None: ...

    def advance(self, job: Job, done_ms: int, added: int) -> None: ...

    def finish(self, result: JobResult) -> None: ...


class NoProgress:
    """A `Progress` that shows nothing."""

    def add(self, job: Job) -> None:
        pass

    def advance(self, job: Job, done_ms: int, added: int) -> None:
        pass

    def finish(self, result: JobResult) -> None:
        pass


def plan(request: FetchRequest, now: datetime) -> list[Job]:
    """Read what is on disk (blocking I/O) and list the jobs with their missing segments."""
    start = to_ms(request.start)
    end = to_ms(request.end)
    closed_end = min(end, hour_floor(to_ms(now)))
    jobs = []
    for symbol in request.symbols:
        for kind in request.kinds:
            path = path_for(request.out, kind, symbol.stem, request.venue)
            on_disk = read_existing(path, kind)
            kind_end = end if kind.is_funding or kind.is_delivery else closed_end
            jobs.append(Job(symbol, kind, path, on_disk, missing(start, kind_end, on_disk)))
    return jobs


def missing(start: int, end: int, on_disk: OnDisk | None) -> tuple[Segment, ...]:
    """Return the segments of [start, end) that could hold rows not on disk yet.

    Bars open and funding settles on whole hours, so a span holds a row only if an hour
    boundary lies in it; past the file's ends the file is extended, never left with a hole.
    """
    first_hour = -(-start // HOUR_MS) * HOUR_MS
    if on_disk is None:
        return (Segment(start, end),) if first_hour < end else ()
    segments = []
    if first_hour < on_disk.first_ms:
        segments.append(Segment(start, on_disk.first_ms, head=True))
    if on_disk.last_ms + HOUR_MS < end:
        segments.append(Segment(on_disk.next_ms, end))
    return tuple(segments)


async def fetch_history(
    request: FetchRequest,
    source: HistorySource,
    *,
    now: datetime,
    settings: FetchSettings | None = None,
    progress: Progress | None = None,
) -> list[JobResult]:
    """Check the symbols, then bring every requested file up to date, a few jobs at a time.

    Bad files on disk or unknown symbols raise `UserError` before anything is written;
    exchange errors end only their own job and are returned in its result.
    """
    settings = settings or FetchSettings()
    progress = progress or NoProgress()
    jobs = await asyncio.to_thread(plan, request, now)
    await source.check_symbols(request.symbols, request.kinds)
    for job in jobs:
        progress.add(job)
    gate = asyncio.Semaphore(max(1, settings.concurrency))

    async def run(job: Job) -> JobResult:
        async with gate:
            result = await _JobRun(job, source, settings, progress).run()
        progress.finish(result)
        return result

    return list(await asyncio.gather(*(run(job) for job in jobs)))


@dataclass
class _JobRun:
    job: Job
    source: HistorySource
    settings: FetchSettings
    progress: Progress
    lines: list[str] = field(init=False)
    first_ms: int | None = field(init=False)
    last_ms: int | None = field(init=False)
    added: int = 0
    fetched: int = 0
    done_ms: int = 0
    dirty: bool = False

    def __post_init__(self) -> None:
        on_disk = self.job.on_disk
        self.lines = list(on_disk.lines) if on_disk else []
        self.first_ms = on_disk.first_ms if on_disk else None
        self.last_ms = on_disk.last_ms if on_disk else None

    async def run(self) -> JobResult:
        error: CarrybotError | None = None
        try:
            for segment in self.job.segments:
                await (self._head(segment) if segment.head else self._tail(segment))
        except CarrybotError as exc:
            error = exc
            logger.warning("Fetching %s stopped: %s", self.job.label, exc)
            self._commit_now()
        except BaseException:
            self._commit_now()  # cancelled or a bug: keep what is complete
            raise
        return JobResult(self.job, self.added, len(self.lines), self.first_ms, self.last_ms, error)

    async def _head(self, segment: Segment) -> None:
        rows: list[Row] = []
        async for page in self._pages(segment, after_ms=segment.start_ms - 1):
            rows.extend(page)
        if rows:
            self.lines[:0] = [r.line for r in rows]
            self.first_ms = rows[0].time_ms
            self.added += len(rows)
            self.dirty = True
            await self._commit()

    async def _tail(self, segment: Segment) -> None:
        after = self.last_ms if self.last_ms is not None else segment.start_ms - 1
        pages = 0
        async for page in self._pages(segment, after_ms=after):
            self.lines.extend(r.line for r in page)
            self.first_ms = self.first_ms if self.first_ms is not None else page[0].time_ms
            self.last_ms = page[-1].time_ms
            self.added += len(page)
            self.dirty = True
            pages += 1
            if pages % max(1, self.settings.commit_every_pages) == 0:
                await self._commit()
        await self._commit()

    async def _pages(self, segment: Segment, *, after_ms: int) -> AsyncIterator[list[Row]]:
        """Yield the new rows of `segment`, page by page (rows after `after_ms` only)."""
        cursor = segment.start_ms
        base = self.done_ms
        while True:
            page = await self.source.page(
                self.job.kind, self.job.symbol, cursor, segment.end_ms, self.settings.page_limit
            )
            fresh = []
            for row in page.rows:
                if row.time_ms >= segment.end_ms:
                    break
                if row.time_ms > after_ms:
                    fresh.append(row)
                    after_ms = row.time_ms
            ended = not page.full or not page.rows or page.rows[-1].time_ms >= segment.end_ms
            if not ended and page.rows[-1].next_ms <= cursor:
                raise BadResponseError(
                    f"{self.job.label}: the page from {cursor} did not move forward"
                )
            cursor = segment.end_ms if ended else page.rows[-1].next_ms
            self.done_ms = base + min(cursor - segment.start_ms, segment.length_ms)
            self.fetched += len(fresh)
            self.progress.advance(self.job, self.done_ms, self.fetched)
            if fresh:
                yield fresh
            if ended:
                return

    async def _commit(self) -> None:
        if self.dirty:
            await asyncio.to_thread(write_atomic, self.job.path, self.job.kind, list(self.lines))
            self.dirty = False

    def _commit_now(self) -> None:
        if self.dirty:
            write_atomic(self.job.path, self.job.kind, self.lines)
            self.dirty = False
