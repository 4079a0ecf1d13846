"""Run the TaskFlow example's pipeline from Python for one day (`weir run daily_orders --date 2026-03-25` on the
command line, or `weir serve` on its schedule)."""

import weir

if __name__ == "__main__":
    result = weir.Project(".").run("daily_orders", date="2026-03-25")
    print(result["orders"].rows_read, "read,", result["orders"].rows_written, "loaded;", result["report"].output)
