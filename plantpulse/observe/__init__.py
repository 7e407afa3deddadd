"""What the pipeline counts, made visible: ``/metrics``, ``/api/health/{live,ready}``, ``plantpulse status``.

    parts.Observed      app.py hands it the running parts; ``vitals()`` reads their snapshots
    vitals.Vitals       one consistent read of every stats snapshot (plain data)
    ready.readiness     pure: Vitals + ReadyConfig -> Readiness (what is not ready, and why)
    metrics             a prometheus_client Collector over ``vitals()``, one registry per app
    routes              the three HTTP routes; status: the ``plantpulse status`` command

Nothing here counts anything itself (no double bookkeeping, nothing on the hot path): every
number is read from the snapshot its owner keeps (``SourceStatus``, ``PipelineStats``,
``EngineStats``, ``SpoolStats``, ``NotifierStats``) at the moment of a scrape or a probe.
Submodules are imported by name (this file imports none), so the store can use ``histogram``
without pulling in the HTTP side.
"""
