from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


def build_session() -> requests.Session:
    """Create a requests session with retry behavior for transient API failures."""
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
    session.headers.update(
        {
            "Accept": "application/json",
            "User-Agent": "data-engineering-handbook/1.0",
        }
    )
    return session


def fetch_all_pages(base_url: str, api_token: str) -> list[dict[str, Any]]:
    """Pull paginated JSON records from an API with retries and basic validation."""
    session = build_session()
    session.headers.update({"Authorization": f"Bearer {api_token}"})

    results: list[dict[str, Any]] = []
    next_url: str | None = base_url

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
    except requests.exceptions.Timeout as exc:
        print("API request timed out. Increase timeout or inspect network conditions.")
        raise RuntimeError("API extraction timed out") from exc
    except requests.exceptions.HTTPError as exc:
        print(f"HTTP error while calling API: {exc}")
        raise RuntimeError("API extraction failed with HTTP error") from exc
    except ValueError as exc:
        print(f"Unexpected response shape: {exc}")
        raise RuntimeError("API extraction failed because payload was malformed") from exc
    finally:
        session.close()


if __name__ == "__main__":
    API_URL = "https://api.example.com/v1/orders"
    API_TOKEN = "replace-with-real-token"

    try:
        orders = fetch_all_pages(API_URL, API_TOKEN)
        print(f"Fetched {len(orders)} records from the API")
    except RuntimeError as exc:
        print(f"Extraction job failed: {exc}")
