"""movierec's service: settings, database schema, data import, command line and (later) the GraphQL API."""
