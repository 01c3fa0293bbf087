"""Budget-first search, the pure part: the constraints, the candidate chains, and each
candidate's predicted latency, size, accuracy drop and cost in minutes (no torch, no rows).

A candidate is a chain of ordinary job steps (method + config values) applied to the starting
model. Its latency is predicted from a latency table measured on this machine
(`engine/search/latency.py`): the model's fixed cost (embeddings, pooler, classifier), the
cost of one encoder layer and of one attention head, all in ms at one batch size. Its accuracy
drop comes from the model's sensitivity map when there is one (engine/reports/sensitivity.py
fixes its shape), else from a prior per method; a drop measured on the validation split for a
prefix of the chain replaces that prefix's prediction (`predict`'s `measured`).

model.py: constants, priors, Constraints, Step, Candidate, LatencyTable; candidates.py: the
chains planned; prediction.py: what each is predicted to cost and lose, and the ranking.
"""

from engine.reports.search_plan.candidates import (
    fit_int8,
    float_share,
    int8_budget,
    keep_layers,
    plan,
    spread,
)
from engine.reports.search_plan.model import (
    ATTENTION_SHARE,
    AWARE_PROBES,
    BATCHES,
    INT8_SCHEMES,
    INT8_SHARE,
    MAX_DROP_EXAMPLES,
    OBJECTIVES,
    PRIOR_DROP,
    PRIOR_INT8_DROP,
    PRIOR_INT8_SPEEDUP,
    RECOVERY,
    SLACK,
    STEP_OVERHEAD_S,
    Candidate,
    Constraints,
    LatencyTable,
    Step,
    step,
)
from engine.reports.search_plan.prediction import (
    closest_to_ceiling,
    effect_shape,
    predict,
    predict_drop,
    predict_latency,
    predict_size,
    rank,
    step_seconds,
    train_steps_of,
)

__all__ = ["ATTENTION_SHARE", "AWARE_PROBES", "BATCHES", "INT8_SCHEMES", "INT8_SHARE",
           "MAX_DROP_EXAMPLES", "OBJECTIVES", "PRIOR_DROP", "PRIOR_INT8_DROP",
           "PRIOR_INT8_SPEEDUP", "RECOVERY", "SLACK", "STEP_OVERHEAD_S", "Candidate",
           "Constraints", "LatencyTable", "Step", "closest_to_ceiling", "effect_shape",
           "fit_int8", "float_share", "int8_budget", "keep_layers", "plan", "predict",
           "predict_drop", "predict_latency", "predict_size", "rank", "spread", "step",
           "step_seconds", "train_steps_of"]
