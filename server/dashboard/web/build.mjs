// Bundles the dashboard: `node build.mjs SRC OUT [NODE_MODULES]`. One script, one stylesheet and the
// page, nothing fetched at run time (no CDN, no web fonts, Leaflet's images inlined).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";

const [src, out, nodeModules] = process.argv.slice(2).map((p) => p && resolve(p));
if (!src || !out) {
  console.error("usage: node build.mjs SRC OUT [NODE_MODULES]");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(src, "app.js") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  outdir: out,
  nodePaths: nodeModules ? [nodeModules] : [],
  loader: { ".png": "dataurl", ".svg": "dataurl" },
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync(join(src, "index.html"), join(out, "index.html"));
