-- Orders and revenue in USD by day and country over every cleaned order (the model the scale-out bench times).
WITH fx(currency, usd_rate) AS (
  VALUES ('USD', 1.0), ('EUR', 1.08), ('GBP', 1.27), ('INR', 0.012), ('JPY', 0.0067), ('BRL', 0.18)
)
SELECT o.order_date, o.country, count(*) AS orders, round(sum(o.net_revenue * fx.usd_rate), 2) AS revenue_usd,
       count(*) FILTER (WHERE o.order_ts IS NULL) AS orders_without_timestamp
FROM silver.orders o LEFT JOIN fx ON o.currency = fx.currency
GROUP BY o.order_date, o.country
