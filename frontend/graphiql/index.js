// GraphiQL for movierec's development server, bundled so that the page loads nothing from another origin.
import { GraphiQL } from "graphiql";
import { parse } from "graphql";
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
    body: JSON.stringify({ ...params, operationName: operationNameIn(params.query, params.operationName) }),
  });
  return response.json();
}

// GraphiQL keeps the name of the last named operation after the document loses it (an anonymous query
// typed over the example): sent, it would have the request refused for naming an unknown operation.
function operationNameIn(query, name) {
  if (!name) return name;
  try {
    const named = parse(query).definitions.some((d) => d.kind === "OperationDefinition" && d.name?.value === name);
    return named ? name : undefined;
  } catch {
    return name; // not GraphQL: the server says what is wrong
  }
}

// The page says what to open on (api/graphiql.py): the example operation, its variables and, for a
// browser on the server's machine in development, the Authorization header with the printed API key,
// which new tabs get too. Tabs a visitor made before are kept (in localStorage, headers excepted); the
// example's tab is the one shown.
const root = document.getElementById("graphiql");
const { query, variables, headers } = root.dataset;

// GraphiQL falls short of WCAG AA where axe looks (tests/admin/test_graphiql_browser.py): its editors' text
// areas have no name, their scrolling boxes are out of the keyboard's reach, and each tab is a list item
// with the tab role holding two buttons. Repaired on whatever React renders; each step is idempotent.
function editorName(editor) {
  if (editor.closest(".graphiql-query-editor")) return "Query";
  if (editor.closest(".result-window")) return "Response";
  const tool = editor.closest(".graphiql-editor-tool > .graphiql-editor");
  if (tool === null) return null;
  return tool.parentElement.querySelector(":scope > .graphiql-editor") === tool ? "Variables" : "Headers";
}

function repair() {
  for (const editor of root.querySelectorAll(".CodeMirror")) {
    const name = editorName(editor);
    if (name !== null && editor.CodeMirror?.getOption("screenReaderLabel") !== name) {
      editor.CodeMirror?.setOption("screenReaderLabel", name);
    }
    const scroll = editor.querySelector(":scope > .CodeMirror-scroll");
    if (scroll !== null && scroll.tabIndex !== 0) scroll.tabIndex = 0;
  }
  // The tab's role and selection move to its title button; React sets them again on the item when a tab
  // is selected, hence the attribute watch below.
  for (const item of root.querySelectorAll("li.graphiql-tab[role=tab], li.graphiql-tab[aria-selected]")) {
    const button = item.querySelector(".graphiql-tab-button");
    if (button !== null) {
      button.setAttribute("role", "tab");
      button.setAttribute("aria-selected", item.getAttribute("aria-selected") ?? "false");
    }
    item.setAttribute("role", "none");
    item.removeAttribute("aria-selected");
  }
}

new MutationObserver(repair).observe(root, {
  childList: true,
  subtree: true,
  attributes: true,
  attributeFilter: ["aria-selected"],
});

createRoot(root).render(
  createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: true,
    query,
    variables,
    headers,
    defaultHeaders: headers,
  }),
);
