"""The demo front end at /demo (api.demo.routes): a page built on the public GraphQL API only, as an
outside front end would be, and the one back-end route such a front end needs to sign its user in."""
