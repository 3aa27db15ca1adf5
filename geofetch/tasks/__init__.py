"""Kinds of work on the core engine: geocoding (:mod:`.geocode`) and fetching
(:mod:`.fetch`). Each supplies a :class:`~geofetch.core.job.Work` to a job."""
