WITH fx(currency, usd_rate) AS (
  VALUES ('USD', 1.0), ('EUR', 1.08), ('GBP', 1.27), ('INR', 0.012), ('JPY', 0.0067), ('BRL', 0.18)
)
SELECT o.order_date, o.country, count(*) AS orders, sum(o.net_revenue * fx.usd_rate) AS revenue_usd
FROM bench.clean_revenue o LEFT JOIN fx ON o.currency = fx.currency
GROUP BY o.order_date, o.country
