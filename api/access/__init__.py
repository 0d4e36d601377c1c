"""Who may do what: API keys for back ends, signed user tokens for browsers, and the rate limits."""
