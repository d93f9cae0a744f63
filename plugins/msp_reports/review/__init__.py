"""Review: where an account engineer reads, annotates and approves each customer's report.

- :mod:`.status` — where a customer's report stands (from the store alone) and the 09:00 list of
  customers still awaiting a decision (pure Python, used by the DAG and the page);
- :mod:`.app` — the review page, a FastAPI app that Airflow mounts (``plugins/review_plugin.py``);
- :mod:`.auth` — who may use it: Airflow's own login, DAG permissions and CSRF checks.
"""
