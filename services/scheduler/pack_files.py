"""PackFilesService: a registered pack's files by content digest, for the workers.

Internal: only workers call it (they cache the files by digest, see services/worker/packs.py).
Every version RegisterPack stored stays readable, so a worker running an assignment made before
a re-registration still gets the files it was assigned.
"""

from __future__ import annotations

import sqlalchemy as sa

from attune.grpcutil.errors import NotFound, rpc_errors
from attune.grpcutil.server import RpcContext
from attune.internal.packs.v1 import packs_pb2, packs_pb2_grpc
from attune.registry.v1 import registry_pb2
from attune.storage import Database
from attune.storage.schema import pack_files


class PackFilesServicer(packs_pb2_grpc.PackFilesServiceServicer):
    """Serves attune.internal.packs.v1.PackFilesService from the pack_files table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @rpc_errors
    async def GetPackFiles(
        self, request: packs_pb2.GetPackFilesRequest, context: RpcContext
    ) -> packs_pb2.GetPackFilesResponse:
        """Every file of one version of a pack, by digest."""
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(pack_files).where(pack_files.c.digest == request.digest))).all()
        if not rows:
            raise NotFound(f"no pack files with digest {request.digest!r}")
        return packs_pb2.GetPackFilesResponse(
            pack_ref=rows[0].pack_ref,
            files=[registry_pb2.PackFile(path=r.path, content=r.content) for r in rows],
        )
