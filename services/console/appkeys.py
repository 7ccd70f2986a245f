"""What the application holds for its handlers: typed keys of `web.Application`."""

from __future__ import annotations

from aiohttp import web

from attune_services.console.graphs import GraphCache
from attune_services.console.scheduler import Scheduler
from attune_services.console.sessions import SessionStore
from attune_services.console.settings import ConsoleSettings
from attune_services.console.streams import OpenStreams

SETTINGS = web.AppKey("settings", ConsoleSettings)
SCHEDULER = web.AppKey("scheduler", Scheduler)
SESSIONS = web.AppKey("sessions", SessionStore)
GRAPHS = web.AppKey("graphs", GraphCache)
STREAMS = web.AppKey("streams", OpenStreams)
