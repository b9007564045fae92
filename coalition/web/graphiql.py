"""The GraphiQL page, served entirely from the package (``coalition/web/static/``): no CDN.

The page's fetcher posts to the GraphQL endpoint with whatever headers the user types
into GraphiQL's headers editor, so ``{"Authorization": "Bearer <key>"}`` there
authenticates the queries. Headers are not persisted in the browser's storage: API
keys should not linger there.
"""

from __future__ import annotations

import html
import json

# The files in static/ (see static/README.md for versions and licenses).
STATIC_FILES = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "graphiql.min.css",
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>html, body, #graphiql {{ height: 100%; margin: 0; overflow: hidden; }}</style>
<link rel="stylesheet" href="{static}/graphiql.min.css">
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="{static}/react.production.min.js"></script>
<script src="{static}/react-dom.production.min.js"></script>
<script src="{static}/graphiql.min.js"></script>
<script>
(function () {{
  var endpoint = {endpoint_json};
  async function fetcher(graphQLParams, opts) {{
    var headers = Object.assign(
      {{"Content-Type": "application/json",
        "Accept": "application/graphql-response+json, application/json"}},
      (opts && opts.headers) || {{}});
    // The headers editor starts with an empty bearer: send none rather than a bad one.
    Object.keys(headers).forEach(function (name) {{
      var value = String(headers[name]).trim();
      if (name.toLowerCase() === "authorization" && (value === "" || value === "Bearer")) {{
        delete headers[name];
      }}
    }});
    var response = await fetch(endpoint, {{
      method: "POST",
      headers: headers,
      body: JSON.stringify(graphQLParams),
      credentials: "same-origin"
    }});
    var text = await response.text();
    try {{
      return JSON.parse(text);
    }} catch (error) {{
      return {{errors: [{{message: "HTTP " + response.status + ": " + text}}]}};
    }}
  }}
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {{
    fetcher: fetcher,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultHeaders: {default_headers_json},
    defaultEditorToolsVisibility: "headers"
  }}));
}})();
</script>
</body>
</html>
"""


def _script_json(value: object) -> str:
    # JSON inside <script>: escape what could close the element or open a comment.
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def graphiql_html(
    endpoint_path: str = "/graphql", static_path: str = "/static", title: str = "Coalition GraphiQL"
) -> str:
    """The GraphiQL page for the endpoint at ``endpoint_path``, assets under ``static_path``."""
    return _PAGE.format(
        title=html.escape(title),
        static=html.escape(static_path.rstrip("/"), quote=True),
        endpoint_json=_script_json(endpoint_path),
        default_headers_json=_script_json(json.dumps({"Authorization": "Bearer "}, indent=2)),
    )
