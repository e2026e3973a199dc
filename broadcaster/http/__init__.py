"""What the HTTP interfaces share (the API at /v1 and the console at /console, in one aiohttp
app): the services of the app, the edge middleware (request ids, access log, errors in JSON),
error bodies, rate limits and the Prometheus registry. Neither interface imports the other."""
