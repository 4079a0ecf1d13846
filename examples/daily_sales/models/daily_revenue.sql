-- Daily revenue by country in USD for the cleaned orders of {{ ds }}.
-- Nothing is hidden: orders whose timestamp could not be parsed, or whose currency has no rate, are counted.
WITH fx(currency, usd_rate) AS (
  VALUES ('USD', 1.0), ('EUR', 1.08), ('GBP', 1.27), ('INR', 0.012), ('JPY', 0.0067), ('BRL', 0.18)
)
SELECT
  CAST('{{ ds }}' AS DATE) AS order_date,
  o.country,
  count(*) AS orders,
  round(sum(o.net_revenue * fx.usd_rate), 2) AS revenue_usd,
  count(*) FILTER (WHERE o.order_ts IS NULL) AS orders_without_timestamp,
  count(*) FILTER (WHERE fx.usd_rate IS NULL) AS orders_without_fx_rate
FROM silver.orders o
LEFT JOIN fx ON o.currency = fx.currency
WHERE o.date = '{{ ds }}'
GROUP BY o.country
ORDER BY revenue_usd DESC NULLS LAST
