"""The crisis cell's web console: server-rendered pages over the HTTP API's own operations.

`setup(app, services)` mounts it at /console on the API's aiohttp app (`broadcaster serve`
does). Pages come from `templates/web/` (Jinja2, plain CSS, one small script, no build step);
sign-in is with an API token, kept out of the pages behind a signed session cookie; every action
calls the same commands as the API (`broadcaster.commands`), with the same role checks.
"""

from broadcaster.web.console import create_console, setup

__all__ = ["create_console", "setup"]
