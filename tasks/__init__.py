"""Declarative task specs (one TOML file per task); read by :mod:`bert_tickets.tasks`."""
