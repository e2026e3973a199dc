"""The HTTP trigger for the crisis cell: `create_app(settings, db, worker)` builds the aiohttp app.

Every route is declared once in `broadcaster.api.routes.ROUTES` (method, path, permission,
request schema, responses); the router, the request checks and the OpenAPI document are all
generated from that table, so the documentation cannot drift from what the handlers enforce.
"""
