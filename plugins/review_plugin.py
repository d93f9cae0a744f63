"""Airflow plugin: the weekly report review page in the Airflow UI.

Mounts :mod:`msp_reports.review.app` on the API server at ``/weekly-reports-review/`` and adds
"Weekly report review" to the UI's Browse menu (an external view shown inside the UI, at
``/plugin/weekly-report-review``). The app checks Airflow's login and the user's permissions on
the ``weekly_executive_report`` DAG itself (:mod:`msp_reports.review.auth`): Airflow mounts
plugin apps without any.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/weekly-reports-review"


def _rerender(settings, item: dict, **options) -> dict:
    """The review page's "Save and re-render": the pipeline's render task (imported on first use).
    Handed to the app here, where it is mounted, so the review package never imports the pipeline."""
    from msp_reports import pipeline

    return pipeline.render(settings, item, **options)


def _rerender_qbr(settings, item: dict, **options) -> dict:
    """The QBR view's "Save and re-render": the QBR pipeline's render (imported on first use)."""
    from msp_reports import qbr_pipeline

    return qbr_pipeline.render(settings, item, **options)


class ReviewApp:
    """The review app as an ASGI app that imports :mod:`msp_reports.review.app` on its first request.

    Airflow loads every plugin in every process that uses plugins, including each task process
    (``get_template_context`` integrates macro plugins). Importing the review app (FastAPI routes
    and Airflow's auth manager) costs about 1.8 s on 2 CPUs; only the API server ever serves it,
    so nobody else pays that now. The API server mounts this object like any ASGI app.
    """

    def __init__(self) -> None:
        self._app = None

    def load(self):
        if self._app is None:
            from msp_reports.review.app import app, use_renderer

            use_renderer(app, _rerender)
            app.state.qbr_rerender = _rerender_qbr  # the QBR view's "Save and re-render" (review/qbr.py)
            self._app = app
        return self._app

    @property
    def routes(self):  # Starlette's Mount resolves url_for() names through these
        return self.load().routes

    async def __call__(self, scope, receive, send) -> None:
        await self.load()(scope, receive, send)


class WeeklyReportReviewPlugin(AirflowPlugin):
    name = "weekly_report_review"
    fastapi_apps = [{"app": ReviewApp(), "url_prefix": URL_PREFIX, "name": "Weekly report review"}]
    external_views = [{
        "name": "Weekly report review",
        "href": f"{URL_PREFIX}/",
        "url_route": "weekly-report-review",
        "destination": "nav",
        "category": "browse",
    }]
