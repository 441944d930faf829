"""`python -m scaleset_operator.dashboard`: the dashboard command on its own."""

from scaleset_operator.dashboard.command import dashboard

if __name__ == "__main__":
    dashboard()
