"""The back office. Every write with a side effect goes through a flow (contacts.py,
operators.py, sources.py), which drains the waiting queue in the same transaction, so
staff see waiting contacts assigned at once.

Importing a module registers its ModelAdmins; sources before keys, whose source
autocomplete needs SourceAdmin.
"""

from distribution.admin import contacts, operators, sources  # noqa: F401, I001
from distribution.admin import keys  # noqa: F401
from distribution.admin import webhooks  # noqa: F401
