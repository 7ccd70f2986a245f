"""The web console: an aiohttp server that serves the browser pages (`static/`) and a JSON API
over the scheduler's public gRPC API, called with the signed-in user's own token (docs/console.md).

It is a client like the CLI: no database, no token of its own. `app.py` assembles the server,
`auth.py` and `sessions.py` decide who is calling, `scheduler.py` holds the one gRPC channel,
`errors.py` maps failures to the API's JSON errors, `views.py` turns messages into JSON, and the
`routes_*.py` modules and `events.py` serve the API by area.
"""
