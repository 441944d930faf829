"""Pure decisions: observed state in, the next actions and the whole new status out.

Nothing here reads a clock, talks to the API or logs; time arrives as an input.
"""
