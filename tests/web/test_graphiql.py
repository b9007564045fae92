"""The GraphiQL page and its assets, served from the package."""

from __future__ import annotations

import re
from importlib import resources

import httpx
from graphql import build_schema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from coalition.graphql.http import GraphQLEndpoint
from coalition.web.graphiql import STATIC_FILES, graphiql_html


async def no_context(request: Request) -> None:
    return None


def make_app(page: str) -> Starlette:
    endpoint = GraphQLEndpoint(build_schema("type Query { hello: String }"), no_context, graphiql_html=page)
    return Starlette(
        routes=[
            Route("/graphql", endpoint),
            Mount("/static", StaticFiles(packages=[("coalition.web", "static")]), name="static"),
        ]
    )


def test_page_loads_only_local_assets() -> None:
    page = graphiql_html()

    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources == [
        "/static/graphiql.min.css",
        "/static/react.production.min.js",
        "/static/react-dom.production.min.js",
        "/static/graphiql.min.js",
    ]
    assert "//" not in " ".join(sources)
    assert "unpkg" not in page and "jsdelivr" not in page and "https://" not in page


def test_page_fetcher_posts_to_the_endpoint_with_the_editor_headers() -> None:
    page = graphiql_html("/api/graphql", "/assets/")

    assert 'var endpoint = "/api/graphql";' in page
    assert 'href="/assets/graphiql.min.css"' in page
    assert "isHeadersEditorEnabled: true" in page
    assert "(opts && opts.headers)" in page
    assert 'method: "POST"' in page
    assert "application/graphql-response+json" in page


def test_paths_are_escaped() -> None:
    page = graphiql_html('/g"</script><script>alert(1)</script>', '/s"><script>')

    assert "<script>alert(1)" not in page
    assert '"><script>' not in page
    assert "\\u003c/script\\u003e" in page


def test_static_files_are_in_the_package_with_license_headers() -> None:
    static = resources.files("coalition.web") / "static"

    for name in STATIC_FILES:
        assert (static / name).is_file(), name
    for name in ("react.production.min.js", "react-dom.production.min.js"):
        head = (static / name).read_text(encoding="utf-8")[:400]
        assert "@license React" in head and "MIT license" in head
    assert ".GraphiQL=" in (static / "graphiql.min.js").read_text(encoding="utf-8")[:1000]  # the UMD global
    readme = (static / "README.md").read_text(encoding="utf-8")
    assert "graphiql 3.9.0" in readme and "react 18.3.1" in readme and "react-dom 18.3.1" in readme


async def test_browser_gets_the_page_and_its_assets() -> None:
    app = make_app(graphiql_html())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        page = await client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "<title>Coalition GraphiQL</title>" in page.text

        for path in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            asset = await client.get(path)
            assert asset.status_code == 200, path
            expected = "text/css" if path.endswith(".css") else "javascript"
            assert expected in asset.headers["content-type"], path
