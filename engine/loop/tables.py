"""The store's tables as SQLAlchemy Core objects, for the loop's aggregate and bulk SQL.

Metrics, attribution and re-tiering write their queries against Core tables rather than the
ORM models (GROUP BY over whole periods, executemany per chunk); naming each table once here
keeps them all on the same objects.
"""

from __future__ import annotations

from engine.loop.sqlfn import table

customer_t = table("customer")
policy_t = table("policy")
claim_t = table("claim")
touch_t = table("touch")
outcome_t = table("outcome")
task_t = table("agent_task")
event_t = table("event")
enrollment_t = table("enrollment")
survey_t = table("survey_answer")
tier_change_t = table("tier_change")
version_t = table("journey_version")
