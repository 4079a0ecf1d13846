"""The peers of the API benchmark, one per process: the handbook's `fetch_all_pages` (requests with retries,
next-URL pagination, all records in a list) written to Parquet with pandas (json_normalize, the same `a__b`
flattening as weir), and dlt's rest_api source loading into its filesystem destination as Parquet.

    python api_peers.py handbook|dlt URL OUT_DIR
"""
import os
import sys


def handbook(url, out):
    # From the handbook, unchanged but for the token.
    from typing import Any

    import pandas as pd
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    def build_session() -> requests.Session:
        retry_strategy = Retry(
            total=5,
            connect=5,
            read=5,
            backoff_factor=1.0,
            status_forcelist=[429, 500, 502, 503, 504],
            allowed_methods=["GET"],
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry_strategy)
        session = requests.Session()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"Accept": "application/json", "User-Agent": "data-engineering-handbook/1.0"})
        return session

    def fetch_all_pages(base_url: str, api_token: str) -> list[dict[str, Any]]:
        session = build_session()
        session.headers.update({"Authorization": f"Bearer {api_token}"})
        results: list[dict[str, Any]] = []
        next_url = base_url
        try:
            while next_url:
                response = session.get(next_url, timeout=30)
                response.raise_for_status()
                payload = response.json()
                if not isinstance(payload, dict):
                    raise ValueError("Expected a JSON object at the top level.")
                records = payload.get("results", [])
                if not isinstance(records, list):
                    raise ValueError("Expected 'results' to be a list.")
                results.extend(record for record in records if isinstance(record, dict))
                next_url = payload.get("next")
            return results
        finally:
            session.close()

    records = fetch_all_pages(url, "token")
    os.makedirs(out, exist_ok=True)
    pd.json_normalize(records, sep="__").to_parquet(os.path.join(out, "orders.parquet"), index=False)


def dlt_rest_api(url, out):
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {"base_url": url.rsplit("/", 1)[0] + "/", "paginator": {"type": "json_link", "next_url_path": "next"}},
            "resources": [{"name": "orders", "endpoint": {"path": "orders", "data_selector": "results"}}],
        }
    )
    os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = out
    pipeline = dlt.pipeline(
        pipeline_name="bench_api", destination="filesystem", dataset_name="raw", pipelines_dir=os.path.join(out, ".dlt")
    )
    pipeline.run(source, loader_file_format="parquet")


if __name__ == "__main__":
    tool, url, out = sys.argv[1:4]
    {"handbook": handbook, "dlt": dlt_rest_api}[tool](url, out)
