"""The worker's local cache of pack files, keyed by content digest (docs/architecture.md, Services).

Files come from the scheduler (PackFilesService.GetPackFiles), so a worker on another host needs no
shared disk. A digest names exactly one set of files, so a cached folder never goes stale: it is
fetched once, written to a temporary folder and renamed into place, and after that every
assignment of that digest costs one dictionary lookup.

Cached files are 0644 and folders 0755 whatever the umask, owned by the worker: the user actions
run as (see runtimes/_user.py) can read and run them but not change the code of later runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import grpc

from attune.internal.packs.v1 import packs_pb2, packs_pb2_grpc

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_FETCH_ATTEMPTS = 3
_FOLDER_MODE = 0o755
_FILE_MODE = 0o644


class PackFetchError(Exception):
    """The files of a pack digest could not be fetched or written."""


class PackCache:
    """`await ensure(digest)` → the folder holding that digest's files."""

    def __init__(self, root: Path, scheduler: packs_pb2_grpc.PackFilesServiceStub, *, retry_interval: float) -> None:
        self.root = root
        self._scheduler = scheduler
        self._retry_interval = retry_interval
        self._ready: dict[str, Path] = {}
        self._fetching: dict[str, asyncio.Future[Path]] = {}

    def ready(self, digest: str) -> Path | None:
        """The folder of a digest already cached (in this process or on disk), else None."""
        folder = self._ready.get(digest)
        if folder is None and _DIGEST.fullmatch(digest) and (self.root / digest).is_dir():
            folder = self._ready[digest] = self.root / digest
        return folder

    async def ensure(self, digest: str) -> Path:
        """The digest's folder, fetching it first if needed (concurrent callers share one fetch)."""
        folder = self.ready(digest)
        if folder is not None:
            return folder
        if not _DIGEST.fullmatch(digest):
            raise PackFetchError(f"pack digest {digest!r} is not a valid digest")
        pending = self._fetching.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(digest))
            self._fetching[digest] = pending
            pending.add_done_callback(lambda _: self._fetching.pop(digest, None))
        return await asyncio.shield(pending)

    async def _fetch(self, digest: str) -> Path:
        response = await self._get_files(digest)
        folder = await asyncio.to_thread(self._write, digest, response)
        self._ready[digest] = folder
        log.info("pack cached", extra={"pack_ref": response.pack_ref, "digest": digest, "files": len(response.files)})
        return folder

    async def _get_files(self, digest: str) -> packs_pb2.GetPackFilesResponse:
        for attempt in range(1, _FETCH_ATTEMPTS + 1):
            try:
                return await self._scheduler.GetPackFiles(packs_pb2.GetPackFilesRequest(digest=digest))
            except grpc.aio.AioRpcError as err:
                retryable = err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                if not retryable or attempt == _FETCH_ATTEMPTS:
                    raise PackFetchError(
                        f"cannot fetch the files of pack digest {digest}: {err.code().name} {err.details()}"
                    ) from err
                await asyncio.sleep(self._retry_interval * attempt)
        raise AssertionError("unreachable")

    def _write(self, digest: str, response: packs_pb2.GetPackFilesResponse) -> Path:
        """Writes the files into a temporary folder, then renames it into place (atomic)."""
        final = self.root / digest
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}-", dir=self.root))
        try:
            for item in response.files:
                relative = PurePosixPath(item.path)
                if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                    raise PackFetchError(f"pack digest {digest}: refusing file path {item.path!r}")
                target = staging.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.content)
            (staging / "actions").mkdir(exist_ok=True)
            _make_readable(staging)
            try:
                os.rename(staging, final)
            except OSError:
                if not final.is_dir():  # not a concurrent writer of the same digest: a real error
                    raise
        except OSError as err:
            raise PackFetchError(f"pack digest {digest}: cannot write to {self.root}: {err}") from err
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return final


def _make_readable(folder: Path) -> None:
    """Readable by everyone, writable by the worker only (mkdtemp makes 0700, the umask may be 077)."""
    os.chmod(folder, _FOLDER_MODE)
    for parent, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(parent, name), _FOLDER_MODE)
        for name in files:
            os.chmod(os.path.join(parent, name), _FILE_MODE)
