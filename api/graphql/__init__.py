"""The GraphQL schema: Strawberry types, resolvers, context and limits."""
