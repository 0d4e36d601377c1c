// Bundles index.js into ../../api/static/graphiql/graphiql.{js,css}: minified, no source map, so that
// the same package-lock.json gives the same files.
import { build } from "esbuild";

await build({
  entryPoints: ["index.js"],
  outfile: "../../api/static/graphiql/graphiql.js",
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  define: { "process.env.NODE_ENV": '"production"' },
  legalComments: "eof", // the libraries' license notices stay in the files
  logLevel: "info",
});
