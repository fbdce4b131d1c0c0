"""The Dagster code location: assembles the domain modules' definitions, nothing else."""

import dagster as dg

from payment_platform.defs import history, live_quality, model, reports, scoring
from payment_platform.resources import build_resources

defs = dg.Definitions(
    assets=[
        history.transaction_history,
        model.fraud_model,
        model.model_metrics,
        model.production_model,
        scoring.scored_transactions,
        reports.daily_scoring_report,
        live_quality.live_model_performance,
    ],
    asset_checks=[scoring.scored_fraud_rate_in_band],
    jobs=[
        history.history_job,
        model.train_job,
        scoring.score_payments,
        scoring.scored_fraud_rate_job,
        reports.report_job,
        live_quality.live_quality_job,
    ],
    sensors=[scoring.keep_scoring],
    schedules=[
        history.history_schedule,
        reports.report_schedule,
        scoring.scored_fraud_rate_schedule,
        live_quality.live_quality_schedule,
    ],
    resources=build_resources(),
)
