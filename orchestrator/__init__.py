"""The outer loop, one room per job, each importing only from the rooms below it:

``cli`` → ``sweep`` → ``run`` → ``distributed`` → ``assembly`` → ``study``, ``tracking`` → ``errors``, ``signals``

* :mod:`.study` — the study file: sections, loading, dotted keys, the search space, the reference page;
* :mod:`.tracking` — MLflow only: runs, params, the champion as a model, the registry, migrations;
* :mod:`.assembly` — the study → the task spec, the loop's parameters, the strategy, the one Evolution;
* :mod:`.distributed` — the population scored on Ray actors;
* :mod:`.run` — one trial end to end;
* :mod:`.sweep` — the Optuna study: workers, claims, liveness, records, the parent run, reproduce;
* :mod:`.cli` — the ``evolora`` command.

A room's public names are importable from the room itself (``from evolora.orchestrator.sweep import
launch``); each of its modules loads on first use of one of its names (:func:`evolora.evolution.lazy.lazy_names`),
so importing a room costs nothing until then.
"""
