# The worker of a `python:` step (weir-engine/src/ops/python.rs). It reads an Arrow IPC stream of batches on stdin
# and writes one IPC stream on stdout with one batch for each batch read: what the function returned for it (with
# `mode: table`, one call on the whole input once it has ended, answered in batches). The
# output schema is learned first, from the function's answer on an empty batch of the input schema, and sent before
# any data so that weir knows the step's columns when it plans (pyarrow's stream writer would hold it back until the
# first batch, so the messages are written here one by one; dictionary columns are sent decoded). The function's own prints go to stderr (the IPC
# stream owns stdout); an exception ends the worker with its traceback on stderr.
import importlib
import os
import sys

import pyarrow as pa

ipc_out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
sys.stdout = sys.stderr

sys.path.insert(0, os.getcwd())
module_name, _, attribute = os.environ["WEIR_FUNCTION"].partition(":")
function = importlib.import_module(module_name)
for part in attribute.split("."):
    function = getattr(function, part)
given = os.environ.get("WEIR_STEP_INPUT", "arrow")
if given == "polars":
    import polars

    def wrap(batch):
        return polars.from_arrow(batch)
elif given == "pandas":
    def wrap(batch):
        return batch.to_pandas()
else:
    def wrap(batch):
        return batch


def table_of(result):
    """What the function returned, as a pyarrow Table."""
    if isinstance(result, pa.Table):
        return result
    if isinstance(result, pa.RecordBatch):
        return pa.Table.from_batches([result])
    if type(result).__module__.startswith("pandas"):
        return pa.Table.from_pandas(result, preserve_index=False)
    if hasattr(result, "__arrow_c_stream__"):
        return pa.table(result)
    raise TypeError(
        f"{os.environ['WEIR_FUNCTION']} returned {type(result).__name__}; return a pyarrow, Polars or pandas table"
    )


def plain(table):
    """`table` without dictionary encoding (Polars categoricals), which the messages below do not carry."""
    if not any(pa.types.is_dictionary(f.type) for f in table.schema):
        return table
    return table.cast(pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                                 for f in table.schema]))


def send(message):
    ipc_out.write(message)
    ipc_out.flush()


reader = pa.ipc.open_stream(sys.stdin.buffer)
schema = plain(table_of(function(wrap(pa.RecordBatch.from_pylist([], schema=reader.schema))))).schema
send(schema.serialize())


def answer(data):
    """The function's answer on `data`, with the columns it gave for the empty batch."""
    table = plain(table_of(function(wrap(data))))
    if table.schema != schema:
        try:
            table = table.select(schema.names).cast(schema)
        except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise TypeError(
                f"{os.environ['WEIR_FUNCTION']} returned columns {table.schema} for a batch, but {schema} for an empty"
                f" one; a step's columns must not depend on its rows ({e})"
            ) from e
    return table


if os.environ.get("WEIR_STEP_MODE") == "table":
    # The whole input, then one call; the answer goes back in batches after weir closed its side.
    for out in answer(reader.read_all()).to_batches(max_chunksize=65536):
        send(out.serialize())
else:
    for batch in reader:
        out = answer(batch).combine_chunks().to_batches()
        send((out[0] if out else pa.RecordBatch.from_pylist([], schema=schema)).serialize())
send(b"\xff\xff\xff\xff\x00\x00\x00\x00")  # end of stream
ipc_out.close()
