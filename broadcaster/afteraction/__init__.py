"""The after-action report of a broadcast (issue 22), pure: built from the rows the store read
(`build`), shown as text (`text`) and as one self-contained HTML page with SVG charts (`html`)."""
