"""The engine room, shared by every kind of work: ordered streaming over an executor
(:mod:`.engine`), thread / process / serial executors with a lifecycle
(:mod:`.executors`), one run's resources (:mod:`.job`), the shared request gate
(:mod:`.ratelimit`) and the retry policy (:mod:`.retry`).

Nothing here knows a provider, a task, the command line or the server.
"""
