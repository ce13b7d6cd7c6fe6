"""The predictive model of a re-login wave (docs/login-model.md): the one model of the node's login
admission (§1) and the client's behaviour (§2), simulated for many replicas at once.

Pure: numpy, scipy and the standard library only. Layout:

- ``model``: inputs (:class:`ServerModel`, :class:`WaveSpec`, :class:`Waits`) and per-client
  outputs (:class:`ClientOutcomes`);
- ``admission``: one node's admission as a recurrence over arrivals, vectorised across replicas;
- ``wave``: the whole wave, both rounds and both nodes, in one pass over time slabs (fast model);
- ``reference``: the same spec as a plain event-driven simulation (tests compare the two);
- ``summary``: series and per-wave figures with bands (:func:`simulate`);
- ``closed_form``: exact results where they exist;
- ``planner``: the smallest safe upper limit (:func:`plan_upper`) and :func:`what_if`.
"""

from __future__ import annotations

from jabberemu.throttle.admission import Admitted, NodeQueue
from jabberemu.throttle.closed_form import (
    BinomialSeries,
    cisco_rule_upper_s,
    round1_arrival_probabilities,
    round1_demand,
    saturated_recovery_max_bounds_s,
    unlimited_is_exact,
)
from jabberemu.throttle.errors import InfeasiblePlan, ModelInputError, ThrottleError
from jabberemu.throttle.model import (
    DEFAULT_REPLICAS,
    DEFAULT_SOAP_TIMEOUT_S,
    AttemptOutcome,
    ClientFate,
    ClientOutcomes,
    FloatArray,
    IntArray,
    NodeAttempts,
    ServerModel,
    WaveKind,
    WaveSpec,
    Waits,
    draw_uniforms,
    draw_waits,
)
from jabberemu.throttle.planner import (
    DEFAULT_MAX_WAIT_P99_S,
    DEFAULT_PROBABILITY,
    PlanCriteria,
    UpperPlan,
    WhatIf,
    plan_upper,
    what_if,
)
from jabberemu.throttle.reference import reference_clients
from jabberemu.throttle.summary import (
    DEFAULT_BIN_S,
    Band,
    ClosedForm,
    NodeSeries,
    ReplicaStats,
    SeriesBand,
    WaveBands,
    WaveResult,
    simulate,
    summarise,
    wilson_interval,
)
from jabberemu.throttle.wave import SLAB_MARGIN, simulate_clients

__all__ = [
    "DEFAULT_BIN_S",
    "DEFAULT_MAX_WAIT_P99_S",
    "DEFAULT_PROBABILITY",
    "DEFAULT_REPLICAS",
    "DEFAULT_SOAP_TIMEOUT_S",
    "SLAB_MARGIN",
    "Admitted",
    "AttemptOutcome",
    "Band",
    "BinomialSeries",
    "ClientFate",
    "ClientOutcomes",
    "ClosedForm",
    "FloatArray",
    "InfeasiblePlan",
    "IntArray",
    "ModelInputError",
    "NodeAttempts",
    "NodeQueue",
    "NodeSeries",
    "PlanCriteria",
    "ReplicaStats",
    "SeriesBand",
    "ServerModel",
    "ThrottleError",
    "UpperPlan",
    "WaveBands",
    "WaveKind",
    "WaveResult",
    "WaveSpec",
    "Waits",
    "WhatIf",
    "cisco_rule_upper_s",
    "draw_uniforms",
    "draw_waits",
    "plan_upper",
    "reference_clients",
    "round1_arrival_probabilities",
    "round1_demand",
    "saturated_recovery_max_bounds_s",
    "simulate",
    "simulate_clients",
    "summarise",
    "unlimited_is_exact",
    "what_if",
    "wilson_interval",
]
