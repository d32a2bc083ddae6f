"""The errors and signals of a trial's life, under evolora's base class. Failures are distinct from
control-flow signals (``TrialPruned``, ``TrialFenced``): a sweep marks a trial failed for the first, and
prunes it or stops writing to it for the second. Ctrl-C is Python's own ``KeyboardInterrupt``; SIGTERM is
:class:`evolora.orchestrator.signals.Terminated`."""

from __future__ import annotations

from evolora.evolution.errors import EvoloraError

__all__ = ["TrackingUnavailable", "TrialPruned", "TrialFenced", "ClusterLost", "ActorFailed"]


class TrackingUnavailable(EvoloraError):
    """The MLflow tracking server stayed unreachable (connections refused, dropped or cut mid-answer) for
    longer than the retry window. A sweep fails the trial as retriable: its retry resumes from the last
    checkpoint and the same MLflow run, so nothing logged is lost or logged twice."""


class TrialPruned(EvoloraError):
    """Signal: an observer (Optuna's pruner) decided the run is hopeless (not a failure)."""


class TrialFenced(EvoloraError):
    """Signal: this run's trial was declared dead by another worker (and will be retried from its
    checkpoint); this process must stop writing to the trial's checkpoint and MLflow run at once."""


class ClusterLost(EvoloraError):
    """The Ray actors scoring a trial's populations kept dying (more than ``ray.retries`` replacements within
    one generation), or the cluster went away (its driver process ended): the trial fails with this message and
    the sweep goes on with its next trial. What completed is in the trial's checkpoint and MLflow run."""


class ActorFailed(EvoloraError):
    """Scoring raised inside a Ray actor (a fitness term's error, say): the trial fails with the actor's error
    type and message, as it would have in one process."""
