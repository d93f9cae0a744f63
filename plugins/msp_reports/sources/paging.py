"""Numbered-page paging, written once for every API that pages with ``page`` + a page count.

Datto (``_page`` / ``pagination.totalPages``) and Cloudflare (``page`` /
``result_info.total_pages``) differ only in parameter names and envelopes, so each module
supplies a function that fetches one page and reads its own envelope; the loop and its guard
live here. Retries and rate limits are not handled here: they belong to the ``ApiClient`` call
inside ``fetch_page``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msp_reports.exceptions import SourceResponseError

MAX_PAGES = 1000


def numbered_pages(
    system: str,
    fetch_page: Callable[[int], tuple[list[Any], int]],
    *,
    max_pages: int = MAX_PAGES,
) -> list[Any]:
    """All items from page 1 to the last page, as reported by the API on each page.

    :param system: the system's name, for the error message.
    :param fetch_page: fetches one 1-based page; returns its items and the total page count
        (``0`` when there is no data at all).
    :param max_pages: a guard against an API that never reports the last page.

    A page after the first that comes back empty while the API still counts it is a listing cut
    short (an expired cursor, a failover mid-listing): it is refused rather than read as the end.
    """
    items: list[Any] = []
    page = 1
    while True:
        page_items, total_pages = fetch_page(page)
        if page > 1 and not page_items and page <= total_pages:
            raise SourceResponseError(system, f"page {page} of {total_pages} came back empty; the listing was "
                                              "cut short")
        items.extend(page_items)
        if page >= total_pages:
            return items
        if page >= max_pages:
            raise SourceResponseError(system, f"still more pages after {max_pages}; refusing to continue")
        page += 1
