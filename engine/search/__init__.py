"""Budget-first search: the fastest (or smallest) model within an accuracy budget.

`python -m engine search --model M --max-drop 0.01 --batch 32 --minutes 60` plans candidate
chains over the lab's methods (engine/reports/search_plan.py), predicts each one's latency
from a latency table measured here (engine/search/latency.py) and its accuracy drop from the
model's sensitivity map (or priors), then runs the most promising first within the time
budget. Every candidate step is an ordinary job (engine.submit.submit, `from_job` for chains),
executed by the worker's one executor step (engine.worker.run_next) in the search's own
process: a live worker may claim a step first (the claim is atomic), else this process runs
it, so a search never waits for a free worker and never deadlocks with a single one.

Selection is on the validation split only (its judging half, `Dataset.val_judge`: training
picked checkpoints on the other half, so drops there are not inflated): after each step the
search runs one validation pass of the step's model in its own process (the runner
evaluates on the test split and is left unchanged).
A chain whose prefix is measured is stopped there when even the low end of that drop's
95 % interval, plus what its later steps are predicted to lose, is over the budget.
The winner is then reported on the test split against the starting model (bootstrap interval,
McNemar's test). The search's state is a JSON record (engine/search/records.py), written after
every step, so the Search page shows it live and after a reload; a cancelled search keeps
what it finished. When the budget is tight, a chain's int8 step is accuracy-aware: quantize's
max_drop is a share of what the budget has left after the chain's earlier steps.

The modules, by responsibility: checks (bad input, before anything is queued), execution
(running a job to its end, validation accuracy), planning (`Prepared`: data, latency tables,
candidates), run (`Run`, the loop over candidates), report (speedup, the winner on the test
split, the `--json` object), control (the verbs: `search`, `launch`, `cancel`), records (the
JSON record) and latency (the latency table). Importing this package is cheap (no torch).
"""

from __future__ import annotations

from engine.search import records
from engine.search.checks import METHODS, check_request
from engine.search.control import cancel, launch, new_record, search
from engine.search.execution import SEQ_LEN, execute, start_job, val_correct
from engine.search.planning import Prepared
from engine.search.report import chain_speedup, result_json, winner_report
from engine.search.run import Run

__all__ = ["METHODS", "SEQ_LEN", "Prepared", "Run", "cancel", "chain_speedup", "check_request",
           "execute", "launch", "new_record", "records", "result_json", "search", "start_job",
           "val_correct", "winner_report"]
