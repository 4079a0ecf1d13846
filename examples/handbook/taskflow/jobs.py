"""The load step's message from the handbook's DAG, as a weir `python:` task: it reads what was loaded."""

import weir


def report(context) -> str:
    rows = weir.Project(".").table(context.params["table"]).to_arrow().num_rows
    return f"Loading {rows} cleaned records into analytics storage ({context.ds})"
