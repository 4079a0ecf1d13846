"""The handbook's Python snippets next to their weir versions (examples/handbook/): each original runs (except the
Airflow DAG, which needs Airflow), each weir version runs in Python and as YAML, and they give the same rows, or
differ where the handbook's code loses data and weir does not."""

import runpy
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import weir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "handbook"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def copy(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(EXAMPLES / name, folder)
        monkeypatch.chdir(folder)
        return folder

    return copy


def test_parquet_vs_csv(example) -> None:
    folder = example("parquet_vs_csv")
    runpy.run_path(str(folder / "handbook.py"), run_name="__main__")  # writes data_output/orders.{csv,parquet}
    handbook = pd.read_parquet(folder / "data_output/orders.parquet")

    project = weir.Project(folder)
    project.validate()
    # YAML: the handbook's CSV landed as a typed Parquet table.
    project.run("save_orders", date="2026-03-25")
    landed = project.sql("SELECT * FROM raw.orders ORDER BY order_id").to_pandas()
    # Python: the handbook's DataFrame written straight to the lake.
    runpy.run_path(str(folder / "weir_python.py"), run_name="__main__")
    written = project.sql("SELECT * FROM raw.orders_from_python ORDER BY order_id").to_pandas()
    for frame in (landed, written):
        assert frame["order_id"].tolist() == handbook["order_id"].tolist()
        assert frame["order_total"].tolist() == handbook["order_total"].tolist()
        assert [str(t) for t in frame["order_ts"]] == [str(t) for t in handbook["order_ts"]]
    assert str(landed["order_ts"].dtype).startswith("datetime64")  # the CSV's text became timestamps again
    files = list((folder / "lake/raw/orders").rglob("*.parquet"))
    assert files and all(f.stat().st_size > 0 for f in files)


def test_cleaning_with_pandas_polars_and_weir(example) -> None:
    folder = example("cleaning")
    with_pandas = runpy.run_path(str(folder / "handbook_pandas.py"))["clean_with_pandas"]()
    with_polars = runpy.run_path(str(folder / "handbook_polars.py"))["clean_with_polars"]()
    with_weir = runpy.run_path(str(folder / "weir_python.py"))["clean_with_weir"](weir.Project(folder))

    rows = with_weir.sort("customer_name").to_dicts()
    assert [(r["customer_name"], r["city"], r["sales_amount"]) for r in rows] == [
        ("alice", "new york", 100.0),
        ("bob", "london", 175.0),  # the mean of the distinct rows' amounts, as both handbook versions fill
        ("charlie", "san francisco", 250.0),
    ]
    pandas_rows = with_pandas.sort_values("customer_name")
    assert pandas_rows["sales_amount"].tolist() == [r["sales_amount"] for r in rows]
    assert sorted(with_polars["customer_name"].to_list()) == [r["customer_name"] for r in rows]
    # Every date parses in weir, as in the handbook's Polars version; its pandas version silently turns bob's
    # `2026/03/02` into NaT (to_datetime takes the first value's format), where weir would fail the check.
    assert [str(r["order_date"]) for r in rows] == ["2026-03-01", "2026-03-02", "2026-03-04"]
    assert [str(d) for d in with_polars.sort("customer_name")["order_date"]] == [str(r["order_date"]) for r in rows]
    bob = pandas_rows[pandas_rows["customer_name"] == "bob"]["order_date"].iloc[0]
    assert pd.isna(bob)

    # The same pipeline from the command line.
    done = subprocess.run(["weir", "run", "clean_customers", "--date", "2026-03-26"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    # A date in no known format: pandas would make it NaT and go on; weir's check fails the run and keeps the table.
    project = weir.Project(folder)
    project.write("raw.customers", pl.DataFrame({"customer_name": ["dan"], "city": ["oslo"], "sales_amount": [1.0],
                                                 "order_date": ["03-05-2026"]}), mode="overwrite")
    with pytest.raises(weir.DataError, match="order_date"):
        project.run("clean_customers", date="2026-03-25", no_retries=True)
    assert project.table("silver.customers").to_polars().height == 3


def test_taskflow_dag_as_a_pipeline(example) -> None:
    folder = example("taskflow")
    project = weir.Project(folder)
    assert "1 pipeline file" in project.validate()
    result = project.run("daily_orders", date="2026-03-25")
    assert (result["orders"].rows_read, result["orders"].rows_written) == (3, 2)
    assert "Loading 2 cleaned records into analytics storage (2026-03-25)" in (result["report"].output or "")
    # A re-run of the day replaces its rows: no duplicate business records.
    project.run("daily_orders", date="2026-03-25")
    assert sorted(project.table("silver.orders").to_polars()["order_id"].to_list()) == [1, 3]
    runpy.run_path(str(folder / "weir_python.py"), run_name="__main__")


class OrdersApi:
    """A paginated orders API on loopback for the handbook's `fetch_all_pages` and weir's `http_api` source: three
    pages of 50 orders under `results`, a `next` link, a bearer token required; `fail` maps a page to the answers it
    gives before its real one (a 503, or a body that is not JSON)."""

    TOKEN = "handbook-token"

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[str] = []
        self.fail: dict[int, list[tuple[int, str]]] = {}
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                api.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {api.TOKEN}":
                    return self.answer(401, '{"error": "unauthorized"}')
                page = int(self.path.partition("page=")[2] or 1)
                if api.fail.get(page):
                    return self.answer(*api.fail[page].pop(0))
                records = [
                    {"order_id": i, "amount": round(i * 1.5, 2), "status": "completed" if i % 4 else "cancelled",
                     "customer": {"id": 1000 + i % 7, "country": ["DE", "US", "FR"][i % 3]}}
                    for i in range((page - 1) * 50 + 1, page * 50 + 1)
                ]
                following = f"http://127.0.0.1:{api.port}/v1/orders?page={page + 1}" if page < 3 else None
                import json

                self.answer(200, json.dumps({"results": records, "next": following}))

            def answer(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/orders"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def orders_api(monkeypatch: pytest.MonkeyPatch):
    api = OrdersApi()
    monkeypatch.setenv("ORDERS_API_URL", api.url)
    monkeypatch.setenv("ORDERS_API_TOKEN", api.TOKEN)
    yield api
    api.server.shutdown()


def test_api_extraction(example, orders_api: OrdersApi) -> None:
    folder = example("api_extraction")
    handbook = runpy.run_path(str(folder / "handbook.py"))
    extract_with_weir = runpy.run_path(str(folder / "weir_python.py"))["extract_with_weir"]
    project = weir.Project(folder)

    # A page that fails once with 503: both retry it and get every record.
    orders_api.fail = {2: [(503, "busy")]}
    records = handbook["fetch_all_pages"](orders_api.url, orders_api.TOKEN)
    orders_api.fail = {2: [(503, "busy")]}
    landed = extract_with_weir(project, "2026-03-25").sort("order_id")
    assert len(records) == landed.height == 150
    assert landed["order_id"].to_list() == [r["order_id"] for r in records]
    assert landed["amount"].to_list() == [r["amount"] for r in records]
    # Nested objects are flattened into columns; the handbook keeps dicts.
    assert landed["customer__country"].to_list() == [r["customer"]["country"] for r in records]
    # A re-run of the day replaces its partition: the same 150 rows, not 300.
    extract_with_weir(project, "2026-03-25")
    assert project.sql("SELECT count(*) AS n FROM raw.api_orders").to_arrow()["n"][0].as_py() == 150

    # Page 3 answers garbage once. The handbook raises and keeps nothing of the 100 records it had;
    orders_api.fail = {3: [(200, "<html>maintenance</html>")]}
    with pytest.raises(RuntimeError, match="malformed"):
        handbook["fetch_all_pages"](orders_api.url, orders_api.TOKEN)
    # weir fails naming the page, keeps pages 1 and 2 in its spool, and the next run of the day asks only for page 3.
    orders_api.fail = {3: [(200, "<html>maintenance</html>")]}
    orders_api.requests.clear()
    with pytest.raises(weir.WeirError, match="page=3"):
        project.run("orders_api", date="2026-03-26", no_retries=True)
    assert [p for p in orders_api.requests] == ["/v1/orders", "/v1/orders?page=2", "/v1/orders?page=3"]
    orders_api.requests.clear()
    resumed = project.run("orders_api", date="2026-03-26")
    assert orders_api.requests == ["/v1/orders?page=3"]
    assert resumed.rows_written == 150
    day = project.table("raw.api_orders", where="date = '2026-03-26'").to_polars()
    assert sorted(day["order_id"].to_list()) == list(range(1, 151))


def test_chunked_database_extraction(example, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime
    import sqlalchemy

    folder = example("db_extraction")
    engine_url = postgres_url.replace("postgres://", "postgresql+psycopg2://", 1)
    setup = sqlalchemy.create_engine(engine_url)
    with setup.begin() as connection:
        connection.execute(sqlalchemy.text("DROP TABLE IF EXISTS fact_orders"))
        connection.execute(sqlalchemy.text(
            "CREATE TABLE fact_orders (order_id bigint PRIMARY KEY, customer_id integer, order_total numeric(12,2),"
            " order_status text, created_at timestamp)"))
        # 250,000 orders over the last 45 days, one every ~15.5 s; the handbook's query keeps the last 30 days.
        connection.execute(sqlalchemy.text(
            "INSERT INTO fact_orders SELECT g, g % 997, (g % 50000) / 100.0 + 0.05,"
            " (ARRAY['completed', 'cancelled', 'pending'])[g % 3 + 1],"
            " date_trunc('second', now()::timestamp - interval '45 days' + g * interval '15.5 seconds')"
            " FROM generate_series(1, 250000) AS g"))
        expected = connection.execute(sqlalchemy.text(
            "SELECT count(*) FROM fact_orders WHERE created_at >= CURRENT_DATE - INTERVAL '30 days'")).scalar_one()

    # The handbook, unchanged but for its hard-coded connection URL.
    handbook = runpy.run_path(str(folder / "handbook.py"))
    extract_orders_in_chunks = handbook["extract_orders_in_chunks"]
    extract_orders_in_chunks.__globals__["build_engine"] = lambda: sqlalchemy.create_engine(engine_url)
    extract_orders_in_chunks(output_dir=str(folder / "db_extract"))
    chunks = sorted((folder / "db_extract").glob("orders_chunk_*.parquet"))
    assert len(chunks) == -(-expected // 100_000)
    by_pandas = pl.read_parquet(chunks).sort("order_id")

    monkeypatch.setenv("ANALYTICS_URL", postgres_url)
    extract_with_weir = runpy.run_path(str(folder / "weir_python.py"))["extract_with_weir"]
    project = weir.Project(folder)
    today = datetime.date.today()
    assert extract_with_weir(project, today.isoformat()) == expected == by_pandas.height
    by_weir = project.sql("SELECT * FROM raw.fact_orders ORDER BY order_id").to_polars()
    assert by_weir["order_id"].to_list() == by_pandas["order_id"].to_list()
    # numeric(12,2) stays decimal(12,2); pandas' chunks hold the money as binary floats (read_sql coerces it).
    assert (by_weir.schema["order_total"], by_pandas.schema["order_total"]) == (pl.Decimal(12, 2), pl.Float64)
    assert [float(v) for v in by_weir["order_total"]] == by_pandas["order_total"].to_list()
    assert by_weir["created_at"].to_list() == by_pandas["created_at"].cast(pl.Datetime("us")).to_list()

    # New orders arrive; the next day's run reads only them (the handbook's script would read all 30 days again).
    with setup.begin() as connection:
        connection.execute(sqlalchemy.text(
            "INSERT INTO fact_orders SELECT 300000 + g, 1, 9.99, 'completed',"
            " date_trunc('second', now()::timestamp) + g * interval '1 second' FROM generate_series(1, 1000) AS g"))
    tomorrow = (today + datetime.timedelta(days=1)).isoformat()
    assert extract_with_weir(project, tomorrow) == 1000
    # A re-run of the first day reads its own window again and replaces what it appended: nothing twice.
    assert extract_with_weir(project, today.isoformat()) == expected
    counts = project.sql("SELECT count(*) AS n, count(DISTINCT order_id) AS d FROM raw.fact_orders").to_arrow()
    assert (counts["n"][0].as_py(), counts["d"][0].as_py()) == (expected + 1000, expected + 1000)
    setup.dispose()


def test_fraud_consumer(example, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import json
    import re

    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    folder = example("fraud_consumer")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic("payments", 3, 1), NewTopic("fraud-alerts", 3, 1)])
    admin.close()
    # 3,000 payments keyed by card: frauds are big *and* foreign; big-only, foreign-only and payments without a
    # country_mismatch field are not.
    payments = []
    for i in range(3000):
        payment = {"transaction_id": f"t{i:05d}", "card_id": f"c{i % 50}", "amount": 120.0 + i % 90,
                   "country_mismatch": i % 5 == 0, "ts": f"2026-03-25T10:{i // 60 % 60:02d}:{i % 60:02d}Z"}
        if i % 37 == 0:
            payment["amount"] = 5000.5 + i
        if i % 111 == 3:
            payment.update(amount=9000.0)
            del payment["country_mismatch"]
        payments.append(payment)
    frauds = sorted(p["transaction_id"] for p in payments if p["amount"] > 5000 and p.get("country_mismatch"))
    assert 10 < len(frauds) < 100
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for p in payments:
        producer.send("payments", key=p["card_id"].encode(), value=json.dumps(p).encode())
    producer.flush()

    # The handbook's consumer, unchanged but for the broker's address and a timeout that ends its loop when idle.
    handbook = runpy.run_path(str(folder / "handbook.py"))
    consume_fraud_events = handbook["consume_fraud_events"]

    def consumer(*topics, **settings):
        settings.update(bootstrap_servers=[kafka_bootstrap], consumer_timeout_ms=8000)
        return KafkaConsumer(*topics, **settings)

    consume_fraud_events.__globals__["KafkaConsumer"] = consumer
    consume_fraud_events()
    flagged = re.findall(r"Potential fraud detected for transaction (\S+)", capsys.readouterr().out)
    assert sorted(flagged) == frauds

    # One message that is not JSON: the handbook's consumer stops on it (and with it everything behind it).
    producer.send("payments", key=b"c1", value=b"{not json")
    producer.flush()
    producer.close()
    with pytest.raises(RuntimeError, match="Fraud streaming consumer failed"):
        consume_fraud_events()

    # weir, from Python: the same frauds, each alert once in Delta and on the topic, the broken message set aside.
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    consume_with_weir = runpy.run_path(str(folder / "weir_python.py"))["consume_with_weir"]
    assert consume_with_weir(weir.Project(folder)) == frauds
    invalid = weir.Project(folder).table("fraud.invalid").to_arrow().to_pylist()
    assert len(invalid) == 1 and "payments" in json.dumps(invalid[0], default=str), invalid
    reader = KafkaConsumer("fraud-alerts", bootstrap_servers=[kafka_bootstrap], auto_offset_reset="earliest",
                           isolation_level="read_committed", consumer_timeout_ms=5000, group_id="handbook-check")
    on_topic = sorted(json.loads(m.value)["transaction_id"] for m in reader)
    reader.close()
    assert on_topic == frauds

    # The same stream from the command line resumes after the committed offsets: nothing is read or alerted twice.
    again = weir.Project(folder).stream("streams/payments.yaml", until_idle="3s")
    assert (again.events, again.alerts) == (0, 0), again.summary
    done = subprocess.run(["weir", "stream", "streams/payments.yaml", "--until-idle", "3s"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and "0 events" in done.stdout, done.stdout + done.stderr
    assert weir.Project(folder).sql("SELECT count(*) AS n FROM fraud.alerts").to_arrow()["n"][0].as_py() == len(frauds)


def test_daily_sales(sales: weir.Project) -> None:
    folder = EXAMPLES / "daily_sales"
    with_polars = runpy.run_path(str(folder / "handbook_polars.py"))["daily_sales_with_polars"]
    with_weir = runpy.run_path(str(folder / "weir_python.py"))["daily_sales_with_weir"]
    # The demo's project is examples/daily_sales on a local lake instead of S3, without the Snowflake task.
    for day in ("2026-03-24", "2026-03-25"):
        polars_rows = with_polars(f"{sales.path}/landing/orders/{day}.csv", day).sort("country").to_dicts()
        weir_rows = with_weir(sales, day).sort("country").to_dicts()
        assert [(r["country"], r["orders"]) for r in weir_rows] == [(r["country"], r["orders"]) for r in polars_rows]
        assert [r["revenue_usd"] for r in weir_rows] == pytest.approx([r["revenue_usd"] for r in polars_rows], abs=0.011)
        assert all(str(r["order_date"]) == day for r in weir_rows)
        # Orders whose timestamp is garbage still count (in both), and weir says how many there are.
        assert sum(r["orders_without_timestamp"] for r in weir_rows) > 0
