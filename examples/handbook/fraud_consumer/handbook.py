from __future__ import annotations

import json

from kafka import KafkaConsumer


def consume_fraud_events() -> None:
    """Illustrative streaming consumer that would feed fraud rules or a model."""
    consumer = KafkaConsumer(
        "payments",
        bootstrap_servers=["localhost:9092"],
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        group_id="fraud-detectors",
        value_deserializer=lambda value: json.loads(value.decode("utf-8")),
    )

    try:
        for message in consumer:
            event = message.value

            # In production, replace this with model scoring or a feature store lookup.
            if event.get("amount", 0) > 5000 and event.get("country_mismatch", False):
                print(f"Potential fraud detected for transaction {event.get('transaction_id')}")
    except Exception as exc:
        print("Streaming consumer failed. Check Kafka connectivity and payload schema.")
        raise RuntimeError("Fraud streaming consumer failed") from exc
    finally:
        consumer.close()


if __name__ == "__main__":
    consume_fraud_events()
