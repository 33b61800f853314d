"""Model card templates (Jinja2, rendered with ``huggingface_hub.ModelCard.from_template``);
read by :mod:`bert_tickets.publish`."""
