"""The kopf layer. Importing this package registers every handler
(`kopf run -m scaleset_operator.controller`)."""

from scaleset_operator.controller import handlers as handlers
