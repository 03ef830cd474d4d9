"""Reading calls (``domain.judge_call``: tagging, placing, the request type) in processes of their
own beside intake's, or in intake's own (TAG_PROCESSES=0).

Intake runs in one Python thread, and reading a call with the classifiers took about a third of
its CPU per call; sharing the process, their tables also pushed the rest of its work out of the
CPU's caches, so the rest cost more. In a process of its own the reading uses another core, and
intake's thread is left the batch's decoding, deciding and writing. A call goes to a worker as a
few strings and comes back as a ``Judgement``; the order is still made in intake's process, by
the same domain function as ever."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.classifier import (
    CategoryModel,
    category_model,
    emergency_model,
    load_examples,
    type_model,
    with_phrases,
)
from shared.contract import HotlineCall, Location, RequestType
from shared.logs import configure_logging, get_logger
from shared.messaging import Unprepared
from shared.reference import Jurisdiction
from shared.settings import Settings

from .domain import Judgement, judge_call
from .tagging import Classifier, lexicon_for

log = get_logger(__name__)

# What a worker is sent of a call: its content, category hint, address, location, request type.
CallText = tuple[str, str | None, str | None, Location | None, RequestType | None]
# Calls sent to a worker at a time: a batch's in a few parts, so that with several workers they
# share it, and the first part's orders can be made while a worker reads the next.
CHUNK = 250
HERE_CHUNK = 64  # read in this process: calls read between two yields to the event loop
# A batch's reading by the workers, at most (a few tenths of a second is usual): past it they are
# taken for hung.
READ_WITHIN = 60.0


@dataclass(frozen=True, slots=True)
class Reader:
    """The jurisdiction and the models a call is read with."""

    ref: Jurisdiction
    threshold: float
    fallback: Classifier | None
    type_model: CategoryModel | None
    alarm: Classifier | None

    @classmethod
    def build(cls, ref: Jurisdiction, threshold: float, use_models: bool) -> Reader:
        """Built once a process (~1 s): the category model asked beside the words
        (tagging.SECOND_OPINION), the request type model, the emergency model (tagging.is_emergency)
        and the tagger's indexes."""
        lexicon_for(ref)
        if not use_models:
            return cls(ref, threshold, None, None, None)
        fallback = category_model(with_phrases(load_examples(), ref))
        return cls(ref, threshold, fallback, type_model(), emergency_model())

    def read(self, text: CallText) -> Judgement:
        return judge_call(*text, self.ref, self.threshold, self.fallback, self.type_model, self.alarm)

    def read_all(self, texts: Sequence[CallText]) -> list[Judgement | Exception]:
        """Each call read, or why it could not be (a bug or a text no rule foresaw: that call alone
        is dead-lettered)."""
        out: list[Judgement | Exception] = []
        for text in texts:
            try:
                out.append(self.read(text))
            except Exception as exc:
                out.append(unreadable(exc))
        return out


class Unreadable(Unprepared):
    """Why a call could not be read: the error's type and where it was raised, not its message,
    which may quote the call (personal data); plain, so that it crosses from a worker whatever
    the error was."""


def unreadable(exc: Exception) -> Unreadable:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}" if frame else ""
    log.error("a call could not be read", error=type(exc).__name__, where=where.strip())
    return Unreadable(f"{type(exc).__name__}{where}")


def text_of(call: HotlineCall) -> CallText:
    return (call.content, call.category_hint, call.address, call.location, call.request_type)


_READER: Reader | None = None  # a worker's


def _start_worker(source: dict[str, Any], threshold: float, use_models: bool, log_level: str) -> None:
    global _READER
    configure_logging("intake-tagger", log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the terminal is the main process's
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    _READER = Reader.build(Jurisdiction.model_validate(source), threshold, use_models)
    gc.freeze()  # as intake's own process does (shared.service): the models outlive every call
    gc.set_threshold(50_000, 20, 20)


def _exit_with(parent: int, every: float = 1.0) -> None:
    """A worker outlives a service killed outright (SIGKILL, the OOM killer): nothing tells it, as
    it holds both ends of its queue's pipe. It looks for its parent every second instead."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


def _worker_ready() -> bool:
    return _READER is not None


def _read_in_worker(texts: Sequence[CallText]) -> list[Judgement | Exception]:
    assert _READER is not None, "the worker's initializer builds it"
    return _READER.read_all(texts)


class Tagger:
    """Reads calls in ``processes`` workers, or in this process when it is 0. Workers are started
    (and their models built) by ``start``, before the service takes a batch. When they fail a
    batch (one died, hung past ``READ_WITHIN``, or could not send an answer back), the batch is
    read in this process instead, as without workers, and the workers are started afresh."""

    def __init__(self, ref: Jurisdiction, settings: Settings, processes: int) -> None:
        self.ref = ref
        self.threshold = settings.tag_threshold
        self.use_models = settings.tag_fallback
        self.processes = processes
        self.log_level = settings.log_level
        self.pool: ProcessPoolExecutor | None = None
        self._here = Reader.build(ref, self.threshold, self.use_models) if not self.processes else None

    @property
    def here(self) -> Reader:
        """The reader in this process: built at once without workers; with them, only when a batch
        is read here (their failure, or a batch applied without being prepared, as in some tests)."""
        if self._here is None:
            self._here = Reader.build(self.ref, self.threshold, self.use_models)
        return self._here

    async def start(self) -> None:
        if not self.processes or self.pool is not None:
            return
        # spawn: a fork of a process running an event loop, threads and sockets is not safe. The
        # workers read this process's jurisdiction, not its file: the file may have changed since.
        pool = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.ref.model_dump(mode="json"), self.threshold, self.use_models, self.log_level),
        )
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(loop.run_in_executor(pool, _worker_ready) for _ in range(self.processes)))
        except BaseException:
            _end(pool)
            raise
        self.pool = pool
        log.info("tagger workers started", processes=self.processes)

    async def stop(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def read(self, calls: Sequence[HotlineCall]) -> list[Judgement | Exception]:
        """Each call's judgement, in order, or why it could not be read."""
        texts = [text_of(c) for c in calls]
        pool = self.pool
        if pool is None:
            return await self._read_here(texts)
        loop = asyncio.get_running_loop()
        chunks = [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)]
        try:
            parts = await asyncio.wait_for(
                asyncio.gather(*(loop.run_in_executor(pool, _read_in_worker, c) for c in chunks)), READ_WITHIN
            )
        except Exception as exc:  # BrokenProcessPool, TimeoutError, an answer that could not be sent
            log.error(
                "the tagger's workers failed: the batch read here, the workers started afresh",
                error=repr(exc)[:300],
            )
            if self.pool is pool:
                self.pool = None
                _end(pool)
                try:
                    await self.start()
                except Exception:
                    log.exception("the tagger's workers could not be started: calls are read here")
            return await self._read_here(texts)
        return [j for part in parts for j in part]

    async def _read_here(self, texts: list[CallText]) -> list[Judgement | Exception]:
        """In this process, yielding every HERE_CHUNK calls: the batch before goes on meanwhile."""
        here = self.here
        out: list[Judgement | Exception] = []
        for i in range(0, len(texts), HERE_CHUNK):
            if i:
                await asyncio.sleep(0)
            out += here.read_all(texts[i : i + HERE_CHUNK])
        return out


def _end(pool: ProcessPoolExecutor) -> None:
    """A pool's workers killed, not asked: a hung one would not answer (Python 3.11 has no
    terminate_workers; its processes are the pool's own)."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
