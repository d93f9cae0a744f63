"""Development tools: not part of the product, never in the wheel or the Airflow image.

- ``simulators/``: one HTTP (or SMTP) simulator per source and delivery system, speaking the
  real product's protocol. They import nothing from ``msp_reports``: they are our claim about each
  product, checked against the product's own SDKs and specs in ``tests/conformance``.
- ``demo``: the twelve-customer demo (``scripts/demo.sh``) and the services the tests share.
- ``engineer``: the stand-in account engineer who approves each report in the demo.
- ``inbox``: what each customer actually received, read back from the simulators and folders.
- ``chaos``: the SIGKILL campaign (``scripts/kill_campaign.sh``).
- ``render_pages``: renders every demo report to PNG pages for a look (``scripts/render_pages.sh``).

On the path for the tests, the demo and the benchmarks: the repository root next to ``plugins``.
"""
