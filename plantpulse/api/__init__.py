"""The HTTP API: acknowledge links and the bearer-token alert API.

``plantpulse.api.app`` (the Starlette application) and ``plantpulse.api.config`` (the ``api:``
section); nothing is imported here, so loading the config does not load the web stack.
"""
