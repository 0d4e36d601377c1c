// GraphiQL for movierec's development server, bundled so that the page loads nothing from another origin.
import { GraphiQL } from "graphiql";
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import "graphiql/style.css";
import "./page.css";

// Same-origin POSTs with the headers typed in GraphiQL's headers tab (e.g. Authorization: Bearer ...).
// The schema has no subscriptions, so no WebSocket client is needed.
async function fetcher(params, options) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/json", ...options?.headers },
    body: JSON.stringify(params),
  });
  return response.json();
}

createRoot(document.getElementById("graphiql")).render(
  createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true }),
);
