"""Training: ``TicketCallback`` (keeps pruned weights at zero in a stock ``Trainer``) and its fused
CPU kernel, ``finetune`` (the only place a ``Trainer`` is built) and its training seam — the
training-data sources (:mod:`.sources`: what to train on) and training objectives
(:mod:`.objectives`: how a batch's loss is computed), each a registry of one-file plug-ins — the
data diet, θ0 / head / rewind-point weights, and the LoRA merge under a ticket.

Layer: imports :mod:`bert_tickets.tasks`, :mod:`bert_tickets.pruning`, :mod:`bert_tickets.ticket`.
Nothing is imported here eagerly: ``transformers``' Trainer utilities take seconds to import.
"""
