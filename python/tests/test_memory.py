"""A 10M-row table is read batch by batch: the reading process never holds the table (it is 160 MB in Arrow)."""

import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.compute as pc

import weir

ROWS = 10_000_000


def test_a_ten_million_row_table_streams_in_bounded_memory(project: weir.Project) -> None:
    schema = pa.schema([("id", pa.int64()), ("amount", pa.float64())])

    def batches():
        for start in range(0, ROWS, 500_000):
            ids = pa.array(range(start, start + 500_000), pa.int64())
            yield pa.record_batch([ids, pc.multiply(ids, 0.5)], schema=schema)

    written = project.write("silver.big", pa.RecordBatchReader.from_batches(schema, batches()), format="delta")
    assert written.rows_written == ROWS

    # A fresh process: its peak resident memory is the reading alone (and the module's own size).
    script = textwrap.dedent(
        f"""
        import resource, weir
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows = total = 0
        for batch in weir.Project({project.path!r}).table("silver.big"):
            rows += batch.num_rows
            total += batch.column("id")[batch.num_rows - 1].as_py()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(rows, (peak - baseline) // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    rows, grown_mb = int(out[0]), int(out[1])
    assert rows == ROWS
    table_mb = ROWS * 16 // (1 << 20)
    print(f"reading {ROWS} rows ({table_mb} MB in Arrow) grew the process by {grown_mb} MB")
    assert grown_mb < table_mb / 2, f"reading grew the process by {grown_mb} MB: the table is {table_mb} MB"
