"""Planning: who gets which touch or task when, under the delivery rules (the rules engine's stage).

Owns occurrences, facts, durable-rules, the step machine, the planner and its workers, explain
and simulate. Imports ``engine.language``, ``channels`` and ``store``; never ``engine.sending``.
"""
