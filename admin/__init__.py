"""movierec's admin dashboard (server-rendered, Jinja2)."""
