"""The synthetic world: a seeded book of customers and the demo month lived through it.

Seeding (book, scoring) and the demo simulation; may import everything below the CLI,
including ``console`` (agents working tasks) and ``standins`` (the providers).
"""
