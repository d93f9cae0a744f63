"""Weekly executive reports for managed-service customers.

The package reads like the pipeline: ``registry`` (who the customers are) → ``sources``
(one module per source system) → ``reconcile`` (snapshot, deltas, flags) → ``render``
(Markdown → HTML → PDF) → ``approval`` → ``delivery``. Nothing here imports Airflow at
module level except the hooks, so the domain rules are testable in milliseconds.
"""
