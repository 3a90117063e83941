"""Readable text keeps the article's structure and drops the site around it."""

from __future__ import annotations

from documents.pipeline.html import ReadablePage, readable_text

PAGE = """<!doctype html>
<html lang="en-GB">
<head>
  <title>  Stock   levels | Example </title>
  <meta name="author" content=" Ann  Writer ">
  <script>var tracking = "script text";</script>
  <style>.hidden { display: none }</style>
</head>
<body>
  <header><nav><a href="/">Home</a> <a href="/about">About us</a></nav></header>
  <main>
    <article>
      <header><h1>Stock   levels</h1><p>By Ann</p></header>
      <p>First paragraph with <b>bold</b>
         and <a href="#">a link</a>.</p>
      <div hidden>hidden attribute</div>
      <div style="display: none">hidden by style</div>
      <span aria-hidden="true">icon label</span>
      <h2>Regions</h2>
      <ul><li>North</li><li>South <em>coast</em></li></ul>
      <table><tr><th>Region</th><th>Days</th></tr><tr><td>North</td><td>12</td></tr></table>
      <pre>line one
  indented line</pre>
      <blockquote>Quoted<br>text</blockquote>
      <form><input name="q"><button>Search</button></form>
      <noscript>Enable JavaScript</noscript>
    </article>
  </main>
  <aside>Related links</aside>
  <footer>Copyright</footer>
</body>
</html>
"""


def test_article_text_with_headings_and_blocks_and_no_chrome() -> None:
    page = readable_text(PAGE)

    assert page == ReadablePage(
        title="Stock levels | Example",
        text=(
            "# Stock levels\n\nBy Ann\n\nFirst paragraph with bold and a link.\n\n## Regions\n\n"
            "North\n\nSouth coast\n\nRegion\tDays\n\nNorth\t12\n\nline one\n  indented line\n\n"
            "Quoted text"
        ),
        language="en-GB",
        author="Ann Writer",
    )


def test_content_outside_main_is_ignored() -> None:
    page = readable_text(
        "<html><body><div>Sidebar promo</div><main><p>Real content.</p></main>"
        "<div>Newsletter signup</div></body></html>"
    )

    assert page.text == "Real content."


def test_articles_are_used_when_there_is_no_main() -> None:
    page = readable_text(
        "<body><div class='menu'>Menu entry</div><article><h2>One</h2><p>First.</p></article>"
        "<div>Ad</div><article><h2>Two</h2><p>Second.</p></article></body>"
    )

    assert page.text == "## One\n\nFirst.\n\n## Two\n\nSecond."


def test_whole_body_without_main_or_article() -> None:
    page = readable_text("<body><h3>Notes</h3>Loose text<p>Paragraph</p>tail</body>")

    assert page.text == "### Notes\n\nLoose text\n\nParagraph\n\ntail"


def test_bytes_are_decoded_with_the_declared_charset() -> None:
    raw = (
        '<html><head><meta charset="windows-1252"><title>Caf\u00e9</title></head>'
        "<body><p>\u201cQuoted\u201d caf\u00e9</p></body></html>"
    ).encode("cp1252")

    page = readable_text(raw)

    assert (page.title, page.text) == ("Caf\u00e9", "\u201cQuoted\u201d caf\u00e9")


def test_title_falls_back_to_first_h1_and_missing_metadata_is_empty() -> None:
    page = readable_text("<html><body><h1>Only   heading</h1><p>x</p></body></html>")

    assert (page.title, page.language, page.author) == ("Only heading", "", "")


def test_deeply_nested_markup_does_not_hit_the_recursion_limit() -> None:
    depth = 3000
    page = readable_text("<body>" + "<span>" * depth + "deep text" + "</span>" * depth + "</body>")

    assert page.text == "deep text"
