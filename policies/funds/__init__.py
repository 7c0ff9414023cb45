"""Fund ledgers: posting rules as data (``postings.yaml``) and the pure poster (``rules.py``)."""

from policies.funds.rules import (
    Account,
    AccountKind,
    Entry,
    Parties,
    PostingRules,
    Side,
    load_rules,
)

__all__ = ["Account", "AccountKind", "Entry", "Parties", "PostingRules", "Side", "load_rules"]
