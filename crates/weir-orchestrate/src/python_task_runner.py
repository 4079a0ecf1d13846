# Runs a `python:` task's function (weir-orchestrate/src/python_task.rs): imports WEIR_CALLABLE (`module:function`)
# with the working folder first on the module path and calls it with the run's context; prints what it returns. An
# exception ends the process with its traceback on stderr, which is the task's log.
import datetime
import importlib
import inspect
import json
import os
import sys
import types

sys.path.insert(0, os.getcwd())
module_name, _, attribute = os.environ["WEIR_CALLABLE"].partition(":")
target = importlib.import_module(module_name)
for part in attribute.split("."):
    target = getattr(target, part)
context = types.SimpleNamespace(
    pipeline=os.environ["WEIR_PIPELINE"],
    task=os.environ["WEIR_TASK"],
    run_id=os.environ["WEIR_RUN_ID"],
    ds=os.environ["WEIR_DS"],
    logical_date=datetime.date.fromisoformat(os.environ["WEIR_DS"]),
    data_interval_start=datetime.datetime.fromisoformat(os.environ["WEIR_DATA_INTERVAL_START"]),
    data_interval_end=datetime.datetime.fromisoformat(os.environ["WEIR_DATA_INTERVAL_END"]),
    params=json.loads(os.environ.get("WEIR_PARAMS", "{}")),
)
takes_context = bool(inspect.signature(target).parameters)
result = target(context) if takes_context else target()
if result is not None:
    print(result)
