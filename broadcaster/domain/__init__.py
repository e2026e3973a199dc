"""The domain's own words, pure: the broadcast state machine, who calls (roles, permissions),
what an operator asks for, template variables' rules, subscriber numbers and languages.

No I/O here: the store, the engine, the commands and every interface build on these."""
