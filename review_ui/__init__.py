"""HTMX + Jinja2 screens for clerks, approvers and controllers, mounted by app.main at /review."""
