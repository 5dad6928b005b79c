"""The enrichment budget's rule for blaming a service (gateway.budget)."""

from __future__ import annotations

from flask import Flask, g

from gateway import DEFAULTS, budget


def _app() -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    return app


def test_a_call_cut_short_by_the_requests_own_budget_blames_no_one() -> None:
    app = _app()
    with app.test_request_context():
        budget.open_budget()
        # Given a call that had only a sliver of the budget left, and timed out
        budget.failed("http://grouping", given=0.2)
        # Then the service is not skipped for everyone else's answers
        assert not budget.skipped("http://grouping")
        # But one given half the budget or more, or one that could not be reached, is
        budget.failed("http://grouping", given=app.config["ENRICH_BUDGET"] / 2)
        assert budget.skipped("http://grouping")
        budget.failed("http://dedup")
        assert budget.skipped("http://dedup")


def test_a_failure_is_skipped_by_its_own_app_only_and_never_outside_an_enrichment() -> None:
    one, two = _app(), _app()
    with one.test_request_context():
        budget.open_budget()
        budget.failed("http://grouping")
        assert budget.skipped("http://grouping")
        g.twinlens_deadline = None  # a call outside an enrichment (resolve, undo) always tries
        assert not budget.skipped("http://grouping")
    with two.test_request_context():
        budget.open_budget()
        assert not budget.skipped("http://grouping")
