"""sweep: many backtests across params and symbols, as Ray tasks, resumable.

A sweep's job is exactly one backtest (`backtest.summary.run_backtest`), so
its figures are that backtest's alone. Jobs run on Ray: started on this
machine by default, or on an existing cluster (``--address``), with the
algorithm's module shipped to the workers. A job whose worker dies is run
again; each result is written as it comes, so an interrupted sweep resumes.

Public API: the grid (`parse_grid_option`, `load_grid_file`, `merge_grids`,
`param_sets`, `check_params`), the jobs (`Job`, `plan_jobs`, `job_id`,
`data_identity`) and their statuses, and the click command `sweep_command`
(``tickbus sweep``). `sweep.task.run_job` (one job, in any process: a Ray
worker or a serial loop) is in a public module of its own: it brings pandas
and matplotlib. Ray itself is imported only when jobs run.
"""

from sweep._cli import sweep_command
from sweep._grid import check_params, load_grid_file, merge_grids, param_sets, parse_grid_option
from sweep._jobs import DONE, FAILED, LOST, Job, data_identity, job_id, plan_jobs

__all__ = [
    "DONE",
    "FAILED",
    "LOST",
    "Job",
    "check_params",
    "data_identity",
    "job_id",
    "load_grid_file",
    "merge_grids",
    "param_sets",
    "parse_grid_option",
    "plan_jobs",
    "sweep_command",
]
