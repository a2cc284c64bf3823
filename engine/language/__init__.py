"""The journey language: journey files, tier and delivery settings, templates, and their validation.

Owns what ops write (parsing with line numbers, the model, conditions, catalogue of events and
anchors, rendering of templates) and the registry of the versions in force. Imports only
``channels`` (template file names, SMS segments) and ``store``.
"""
