"""The HTTP layer shared by the source systems and the delivery channels that speak HTTP.

- :mod:`.client`: :class:`~.client.ApiClient`, one ``requests`` session per connection with
  timeouts, bounded retries, 429 with ``Retry-After`` and the refusal of another host's URL;
- :mod:`.hooks`: :class:`~.hooks.HttpServiceHook`, the Airflow hook on one connection (lazy
  connection loading, base URL, the **Test** button's probe with every secret masked);
- :mod:`.paging`: the paging loops (page numbers, offset/limit, next link);
- :mod:`.oauth`: OAuth2 client-credentials tokens, cached, renewed once on 401;
- :mod:`.msidentity`: the Microsoft identity platform's token endpoint and ``AADSTS`` hints;
- :mod:`.timestamps`: wire timestamps in, UTC-aware datetimes out.

Nothing here imports a source module or a delivery channel: a source (:mod:`msp_reports.sources`)
or a delivery channel (:mod:`msp_reports.delivery.teams`) builds on it.
"""
