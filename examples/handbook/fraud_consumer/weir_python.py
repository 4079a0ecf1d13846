"""The handbook's `consume_fraud_events`, with weir: the stream streams/payments.yaml decides every payment on the
`payments` topic, writes alerts to the `fraud-alerts` topic and the `fraud.alerts` Delta table exactly once, and
here stops after 10 idle seconds. Run from this folder with KAFKA_BOOTSTRAP set (localhost:9092)."""

import weir


def consume_with_weir(project: weir.Project) -> list[str]:
    result = project.stream("streams/payments.yaml", until_idle="10s")
    print(result.summary)
    alerts = project.sql("SELECT transaction_id FROM fraud.alerts ORDER BY transaction_id").to_arrow()
    for transaction_id in alerts["transaction_id"].to_pylist():
        print(f"Potential fraud detected for transaction {transaction_id}")
    return alerts["transaction_id"].to_pylist()


if __name__ == "__main__":
    consume_with_weir(weir.Project("."))
