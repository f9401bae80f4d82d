"""The control API: accounts, social graph, chat, payments, moderation and the tokens that open rooms."""
