"""TokenService: create, list and revoke client tokens (admin only; see `tokens.py`), and WhoAmI,
which tells any caller its own token's name and role (the console shows only what that role may do)."""

from __future__ import annotations

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.grpcutil.convert import timestamp
from attune.grpcutil.errors import InvalidArgument, Violation, rpc_errors
from attune.grpcutil.server import RpcContext
from attune.security import caller
from attune.security.policy import Role
from attune.security.tokens import TokenRecord, new_token
from attune_services.scheduler.tokens import TokenStore, TokenVerifier

_ROLE_TO_PROTO = {
    Role.VIEWER: auth_pb2.ROLE_VIEWER,
    Role.OPERATOR: auth_pb2.ROLE_OPERATOR,
    Role.ADMIN: auth_pb2.ROLE_ADMIN,
}
_ROLE_FROM_PROTO = {value: role for role, value in _ROLE_TO_PROTO.items()}


def token_view(record: TokenRecord) -> auth_pb2.Token:
    """A `Token` message from a stored token."""
    return auth_pb2.Token(
        name=record.name,
        role=_ROLE_TO_PROTO[record.role],
        created_at=timestamp(record.created_at),
        created_by=record.created_by,
        revoked_at=timestamp(record.revoked_at),
    )


class TokenServicer(auth_pb2_grpc.TokenServiceServicer):
    """Serves attune.auth.v1.TokenService from the `api_tokens` table."""

    def __init__(self, store: TokenStore, verifier: TokenVerifier) -> None:
        self._store = store
        self._verifier = verifier

    @rpc_errors
    async def CreateToken(
        self, request: auth_pb2.CreateTokenRequest, context: RpcContext
    ) -> auth_pb2.CreateTokenResponse:
        """Stores a new random token and returns its value, this once."""
        role = _ROLE_FROM_PROTO.get(request.role)
        if role is None:
            raise InvalidArgument("role is required", [Violation("role", "one of viewer, operator, admin")])
        secret = new_token()
        record = await self._store.create(request.name, role, secret, created_by=caller.token_name())
        return auth_pb2.CreateTokenResponse(token=token_view(record), secret=secret)

    @rpc_errors
    async def ListTokens(self, request: auth_pb2.ListTokensRequest, context: RpcContext) -> auth_pb2.ListTokensResponse:
        """Every token, by name, without values."""
        return auth_pb2.ListTokensResponse(tokens=[token_view(r) for r in await self._store.list()])

    @rpc_errors
    async def RevokeToken(
        self, request: auth_pb2.RevokeTokenRequest, context: RpcContext
    ) -> auth_pb2.RevokeTokenResponse:
        """Revokes a token: refused here at once, by other replicas within the verifier's ttl."""
        if not request.name:
            raise InvalidArgument("name is required", [Violation("name", "required")])
        record = await self._store.revoke(request.name)
        self._verifier.forget(record.name)
        return auth_pb2.RevokeTokenResponse(token=token_view(record))

    @rpc_errors
    async def WhoAmI(self, request: auth_pb2.WhoAmIRequest, context: RpcContext) -> auth_pb2.WhoAmIResponse:
        """The caller's token name and role. With authentication on, the authorization check has
        verified the token before this runs, so the caller is set; with it off nobody is
        authenticated and every caller may do everything: an admin."""
        who = caller.current()
        if who is None or who.role is None:
            return auth_pb2.WhoAmIResponse(name="", role=auth_pb2.ROLE_ADMIN, auth_enabled=False)
        return auth_pb2.WhoAmIResponse(name=who.name, role=_ROLE_TO_PROTO[who.role], auth_enabled=True)
