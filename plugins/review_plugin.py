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


def _app():
    from msp_reports.review.app import app

    return app


class WeeklyReportReviewPlugin(AirflowPlugin):
    name = "weekly_report_review"
    fastapi_apps = [{"app": _app(), "url_prefix": URL_PREFIX, "name": "Weekly report review"}]
    external_views = [{
        "name": "Weekly report review",
        "href": f"{URL_PREFIX}/",
        "url_route": "weekly-report-review",
        "destination": "nav",
        "category": "browse",
    }]
