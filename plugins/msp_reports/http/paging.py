"""The paging loops, each written once for every API that pages that way.

- **page numbers** (:func:`numbered_pages`): Datto (``_page`` / ``pagination.totalPages``),
  Cloudflare (``page`` / ``result_info.total_pages``), HaloPSA (``page_no`` / ``record_count``),
  ConnectWise (``page`` while the ``Link`` header has ``rel="next"``).
- **offset / limit** (:func:`offset_pages`): Veeam VSPC (``limit``/``offset``, ``pagingInfo.total``),
  Veeam VBR (``skip``/``limit``, ``pagination.total``), UptimeRobot (``offset``/``limit``,
  ``pagination.total``).
- **next link** (:func:`next_link_pages`, with :func:`odata_page` for the OData envelope):
  Defender (Graph ``@odata.nextLink``), Sentinel (ARM ``nextLink``). The link is followed
  verbatim through the source's :class:`~msp_reports.http.client.ApiClient`, which refuses one
  on another host than the connection's before the token is sent.

Each module supplies a function that fetches one page and reads its own envelope; the loop and
its guards (a page cap, a listing cut short, a next link that never moves on) live here.
Retries and rate limits are not handled here: they belong to the ``ApiClient`` call inside the
fetch function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from msp_reports.exceptions import SourceResponseError

MAX_PAGES = 1000


def _too_many(system: str, max_pages: int) -> SourceResponseError:
    return SourceResponseError(system, f"still more pages after {max_pages}; refusing to continue")


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
            raise _too_many(system, max_pages)
        page += 1


def offset_pages(
    system: str,
    fetch: Callable[[int], tuple[list[Any], int | None]],
    page_size: int,
    *,
    max_pages: int = MAX_PAGES,
) -> list[Any]:
    """All items of an offset-paged collection.

    :param system: the system's name, for the error message.
    :param fetch: fetches the page starting at an offset; returns its items and the total the
        API reports (``None`` if it reports none: then a short page is the last).
    :param page_size: the limit asked for.
    :param max_pages: a guard against an API that never reports the last page.

    An empty page before the reported total is a listing cut short, refused as in
    :func:`numbered_pages`.
    """
    items: list[Any] = []
    for _ in range(max_pages):
        page, total = fetch(len(items))
        items.extend(page)
        if not page and total is not None and len(items) < total:
            raise SourceResponseError(system, f"an empty page at offset {len(items)} of {total}; the listing "
                                              "was cut short")
        if not page or (total is not None and len(items) >= total) or (total is None and len(page) < page_size):
            return items
    raise _too_many(system, max_pages)


def next_link_pages(
    system: str,
    fetch: Callable[[str | None], tuple[list[Any], str | None]],
    *,
    max_pages: int = MAX_PAGES,
) -> list[Any]:
    """All items of a collection whose every page names the next one, until a page names none.

    :param system: the system's name, for the error message.
    :param fetch: fetches the first page when given ``None``, else the page at a next link;
        returns its items and the next link (``None`` on the last page).
    :param max_pages: a guard against an API that never reaches the last page.

    A next link that an earlier page already named would hand over the same pages again, for
    ever: it is refused at once rather than followed up to the page cap. The message names the
    pages, not the link, whose query may carry a signature.
    """
    items: list[Any] = []
    named_by: dict[str, int] = {}
    link: str | None = None
    for page in range(1, max_pages + 1):
        page_items, link = fetch(link)
        items.extend(page_items)
        if link is None:
            return items
        if link in named_by:
            raise SourceResponseError(system, f"page {page} repeats the next link of page {named_by[link]}; the "
                                              "listing would never end")
        named_by[link] = page
    raise _too_many(system, max_pages)


def odata_page(system: str, body: Mapping[str, Any], next_key: str) -> tuple[list[Any], str | None]:
    """Items and next link of an OData collection page: ``{"value": [...], <next_key>: url}``
    (Graph's ``@odata.nextLink``, ARM's ``nextLink``); an empty or absent link ends the listing."""
    values = body.get("value")
    if not isinstance(values, list):
        raise SourceResponseError(system, "a collection page without a 'value' list")
    link = body.get(next_key)
    if link in (None, ""):
        return list(values), None
    if not isinstance(link, str):
        raise SourceResponseError(system, f"{next_key} is {link!r}, not a URL")
    return list(values), link
