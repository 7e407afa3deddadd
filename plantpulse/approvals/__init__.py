"""Rule and KPI changes go live through approval (docs/approvals.md).

    plant = service.Plant.of(load_config("plant.yaml"))          # approvals: on
    change = await service.propose(plant, log, store, files, by=..., reason=..., now=t)
    change = await service.decide(plant, log, change.id, by=..., approve=True, text=None, now=t)
    h = changes.fold(await log.records())                         # live versions, chains, rule versions
    findings = log.verify(records, witness)                       # the hash chain

Pure: ``log`` (the hash chain), ``chain`` (one change's sign-off machine), ``diff``,
``changes`` (the log folded), ``predict.compare``, ``reload`` (engine state across versions),
``render``. Adapters: ``changelog`` and its backends, ``service``, ``cli``, ``api``, ``live``
(hot reload in a running pipeline) and ``notify`` (approvers told and reminded).
"""
