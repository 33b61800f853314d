"""Publishing: model cards (:mod:`.card`) and pushing tickets or a run's levels to the Hugging
Face Hub (:mod:`.push`). Importing this package registers :func:`push_ticket` as the
implementation of :meth:`TicketMask.push_to_hub`.

Layer: imports :mod:`bert_tickets.results`, :mod:`bert_tickets.tasks` and :mod:`bert_tickets.ticket`.
"""

from ..ticket.hub import register_pusher
from .card import CARD_TEMPLATE, CITATION, card_template_path, find_command, render_model_card
from .push import PushedLevel, branch_name, describe_pushed, plan_levels, push_run, push_ticket, ticket_from_run

register_pusher(push_ticket)

__all__ = [
    "CARD_TEMPLATE",
    "CITATION",
    "PushedLevel",
    "branch_name",
    "card_template_path",
    "describe_pushed",
    "find_command",
    "plan_levels",
    "push_run",
    "push_ticket",
    "render_model_card",
    "ticket_from_run",
]
