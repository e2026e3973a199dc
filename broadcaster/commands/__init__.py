"""The use cases: what a person can do with broadcaster, whatever the way in.

The CLI, the HTTP API, the console, CAP and the drill scheduler all call these functions with a
`Caller` (who, with which role, through which interface); each checks authorisation once
(`access.authorize`), writes its audit entry once (`store.audit`), and returns typed results or
raises the domain's errors (`broadcaster.errors`: NotFoundError, ForbiddenError, ConflictError,
InputError), which each interface translates into its own words (an HTTP status, an exit code,
an HTML page). Interfaces translate; they never call each other.
"""
