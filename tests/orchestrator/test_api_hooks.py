"""A script's hooks on the loop: callbacks see every generation's row and may stop the run; a time budget
stops it; either way the last generation is validated, so the champion is still chosen on validation."""

import numpy as np
import pytest

import evolora
from evolora.evolution import Evolution, GAParams, LoopParams, Observer

from ..conftest import tiny_study


def test_stop_ends_the_loop_after_one_more_validated_generation():
    class StopAt(Observer):
        def bind(self, loop):
            self.loop, self.rows = loop, []

        def on_generation(self, row):
            self.rows.append(row)
            if row["gen"] == 2:
                self.loop.stop()

    obs = StopAt()
    loop = Evolution(
        LoopParams(generations=10, validate_every=5),
        GAParams(population=6),
        np.zeros(8, np.float32),
        lambda pop, gen: [(-float(np.sum((np.asarray(g) - 1) ** 2)), {}) for g in pop],
        lambda g: -float(np.sum((np.asarray(g) - 1) ** 2)),
        0,
        [obs],
    )
    res = loop.run()
    assert [r["gen"] for r in obs.rows] == [0, 1, 2, 3] and res.generations == 4
    assert "val" in obs.rows[-1]  # validated as a last generation, though 3 % 5 != 0


def test_run_takes_callbacks_and_a_time_budget(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = tiny_study(tmp_path, evolution__generations=8)
    seen = []

    def stop_at_gen_1(row):
        seen.append(dict(row))
        return row["gen"] == 1

    out = evolora.run(study, callbacks=[stop_at_gen_1], tracking_uri=uri, progress=False)
    assert [r["gen"] for r in seen] == [0, 1, 2] and out.result.generations == 3
    assert "val" in seen[-1] and "fit_best" in seen[0]
    timed = evolora.run(study, time_budget=1e-6, tracking_uri=uri, progress=False)
    assert timed.result.generations == 2  # generation 0 over budget: generation 1 is the last
    with pytest.raises(evolora.ConfigError, match="time_budget"):
        evolora.run(study, time_budget=0, tracking_uri=uri)
    with pytest.raises(evolora.ConfigError, match="callbacks"):
        evolora.run(study, callbacks=[1], tracking_uri=uri)
