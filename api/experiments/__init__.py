"""A/B experiments between model versions: who saw what (impressions), what they did next (feedback),
and which arm serves people better (results)."""
