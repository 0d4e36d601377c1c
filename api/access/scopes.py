"""The scopes an API key can hold (no imports: the command line's help lists them)."""

SCOPES = {
    "read": "read every user's profile, ratings and recommendations",
    "users:write": "create users and rate as any user",
    "catalogue:write": "add movies to the catalogue",
    "tokens:issue": "issue user tokens for browser front ends",
}
